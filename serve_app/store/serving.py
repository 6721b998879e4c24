"""Store requests: limits, embedding through the embeddings deployment, the database call."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import orjson

from serve_app.embeddings.serving import EmbeddingService
from serve_app.errors import ApiError, retry_later
from serve_app.responses import FastJSONResponse
from serve_app.settings import Settings
from serve_app.store.db import Document, Store
from serve_app.store.protocol import SearchRequest, UpsertRequest
from serve_app.store.schema import StoreUnavailable


class StoreService:
    """What the /v1/documents and /v1/search routes do."""

    def __init__(self, store: Store, embeddings: EmbeddingService, settings: Settings):
        self.store = store
        self.embeddings = embeddings
        self.settings = settings

    @contextlib.contextmanager
    def _store_call(self) -> Iterator[None]:
        """StoreUnavailable in the block as a 503 with Retry-After."""
        try:
            yield
        except StoreUnavailable as exc:
            fix = f" Fix: {exc.fix}." if exc.fix else ""
            message = f"The document store is unavailable: {exc.reason}.{fix}"
            raise retry_later("store_unavailable", message, self.settings.retry_after_s) from None

    def _check_upsert(self, body: UpsertRequest) -> list[Document]:
        s = self.settings
        if len(body.documents) > s.store_max_documents:
            raise ApiError(
                413,
                "too_many_documents",
                f"{len(body.documents)} documents given; at most {s.store_max_documents} "
                "per request.",
            )
        seen: set[str] = set()
        docs = []
        for i, doc in enumerate(body.documents):
            if doc.id in seen:
                raise ApiError(
                    422, "validation_error", f"documents[{i}].id: duplicate id {doc.id!r}."
                )
            seen.add(doc.id)
            if len(doc.text) > s.embeddings_max_input_chars:
                raise ApiError(
                    413,
                    "input_too_long",
                    f"documents[{i}].text has {len(doc.text)} characters; "
                    f"at most {s.embeddings_max_input_chars}.",
                )
            size = len(orjson.dumps(doc.metadata))
            if size > s.store_max_metadata_bytes:
                raise ApiError(
                    413,
                    "metadata_too_large",
                    f"documents[{i}].metadata is {size} bytes as JSON; "
                    f"at most {s.store_max_metadata_bytes}.",
                )
            docs.append(Document(doc.id, doc.text, doc.metadata))
        return docs

    async def upsert(self, body: UpsertRequest) -> FastJSONResponse:
        # Checked before any model time or database write: one bad document stores nothing.
        docs = self._check_upsert(body)
        vectors, _ = await self.embeddings.embed([d.text for d in docs], bulk=True)
        with self._store_call():
            count = await self.store.upsert(body.namespace, docs, vectors)
        return FastJSONResponse({"upserted": count})

    async def delete(self, namespace: str, doc_id: str) -> None:
        with self._store_call():
            deleted = await self.store.delete(namespace, doc_id)
        if not deleted:
            raise ApiError(404, "not_found", f"No document {doc_id!r} in namespace {namespace!r}.")

    async def search(self, body: SearchRequest) -> FastJSONResponse:
        if len(body.query) > self.settings.embeddings_max_input_chars:
            raise ApiError(
                413,
                "input_too_long",
                f"query has {len(body.query)} characters; "
                f"at most {self.settings.embeddings_max_input_chars}.",
            )
        vectors, _ = await self.embeddings.embed([body.query])
        with self._store_call():
            # A namespace with no documents (new or emptied) is not an error: no results.
            hits = await self.store.search(body.namespace, vectors[0], body.k, body.filter)
        return FastJSONResponse({"results": hits})  # orjson writes each Hit as a JSON object
