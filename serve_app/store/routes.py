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

# OpenAPI links: what a client does next with what it sent or got (upsert -> search ->
# delete). Schemathesis follows them for stateful sequences (python -m benchmarks.fuzz).
_SEARCH = "#/paths/~1v1~1search/post"
_DELETE = "#/paths/~1v1~1documents~1{namespace}~1{doc_id}/delete"
_UPSERT_LINKS = {
    "SearchTheNamespace": {
        "operationRef": _SEARCH,
        "requestBody": {
            "namespace": "$request.body#/namespace",
            "query": "$request.body#/documents/0/text",
        },
    },
    "DeleteTheFirstDocument": {
        "operationRef": _DELETE,
        "parameters": {
            "path.namespace": "$request.body#/namespace",
            "path.doc_id": "$request.body#/documents/0/id",
        },
    },
}
_SEARCH_LINKS = {
    "DeleteTheBestMatch": {
        "operationRef": _DELETE,
        "parameters": {
            "path.namespace": "$request.body#/namespace",
            "path.doc_id": "$response.body#/results/0/id",
        },
    },
}


@router.post(
    "/v1/documents",
    response_model=UpsertResponse,
    responses={200: {"description": "Upserted", "links": _UPSERT_LINKS}},
)
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


@router.post(
    "/v1/search",
    response_model=SearchResponse,
    responses={200: {"description": "Best matches first", "links": _SEARCH_LINKS}},
)
async def search(body: SearchRequest, request: Request) -> Response:
    """The k documents closest in meaning to the query (cosine similarity, best first)."""
    return await request.app.state.store.search(body)
