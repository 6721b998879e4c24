"""HTTP routes for embeddings (no logic here)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from serve_app.embeddings.protocol import EmbeddingRequest, EmbeddingResponse
from serve_app.responses import FastJSONResponse

router = APIRouter(tags=["embeddings"])


@router.post("/v1/embeddings", response_model=EmbeddingResponse)
async def create_embeddings(body: EmbeddingRequest, request: Request) -> FastJSONResponse:
    """OpenAI-compatible embeddings: L2-normalised 384-dim vectors."""
    return await request.app.state.embeddings.create(body)
