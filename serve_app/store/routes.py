"""HTTP routes for documents and search (no logic here)."""

from __future__ import annotations

from fastapi import APIRouter, Path, Request, Response

from serve_app.store.protocol import (
    ID_PATTERN,
    NAMESPACE_PATTERN,
    SearchRequest,
    SearchResponse,
    UpsertRequest,
    UpsertResponse,
)

router = APIRouter(tags=["search"])


@router.post("/v1/documents", response_model=UpsertResponse)
async def upsert_documents(body: UpsertRequest, request: Request) -> Response:
    """Embed and upsert documents in one transaction (all or nothing); idempotent per id."""
    return await request.app.state.store.upsert(body)


@router.delete("/v1/documents/{namespace}/{doc_id:path}", status_code=204)
async def delete_document(
    request: Request,
    namespace: str = Path(..., pattern=NAMESPACE_PATTERN),
    doc_id: str = Path(..., pattern=ID_PATTERN),
) -> Response:
    """Delete one document: 204, or 404 when it does not exist."""
    await request.app.state.store.delete(namespace, doc_id)
    return Response(status_code=204)


@router.post("/v1/search", response_model=SearchResponse)
async def search(body: SearchRequest, request: Request) -> Response:
    """The k documents closest in meaning to the query (cosine similarity, best first)."""
    return await request.app.state.store.search(body)
