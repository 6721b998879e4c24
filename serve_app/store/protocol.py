"""Request and response bodies of the store routes (API.md: /v1/documents, /v1/search)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

# Printable, no "/" (the namespace is a path segment of DELETE), 1..128 characters.
NAMESPACE_PATTERN = r"^[^\x00-\x1f\x7f/]{1,128}$"
ID_PATTERN = r"^[^\x00-\x1f\x7f]{1,256}$"
MAX_K = 100
MAX_FILTER_KEYS = 16

# JSON stored as jsonb and sent back must round-trip: 64-bit integers (orjson's range, and
# what most clients parse exactly), finite floats, and nesting that any JSON library reads.
MIN_INT, MAX_INT = -(2**63), 2**63 - 1
MAX_DEPTH = 32


def storable(value: Any, where: str, depth: int = 0) -> Any:
    """``value``, or a ValueError naming ``where`` for what PostgreSQL cannot store or give back
    as sent: NUL, unpaired surrogates (JSON spells "\\ud800"), NaN and infinities (Python reads
    ``NaN`` and ``1e400``), and what the constants above rule out."""
    if depth > MAX_DEPTH:
        outermost = where.split("][")[0] + ("]" if "][" in where else "")
        raise ValueError(f"{outermost} is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{where} contains a NUL character (\\u0000)")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError(
                f"{where} contains an unpaired surrogate (not valid Unicode)"
            ) from None
    elif isinstance(value, int):  # bool included: always in range
        if not MIN_INT <= value <= MAX_INT:
            raise ValueError(f"{where} is an integer outside the 64-bit range")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} is not a finite number")
    elif isinstance(value, dict):
        for key, item in value.items():
            storable(key, f"{where} key", depth + 1)
            storable(item, f"{where}[{key!r}]", depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            storable(item, f"{where}[{i}]", depth + 1)
    return value


class DocumentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: StrictStr = Field(..., pattern=ID_PATTERN, description="Unique within the namespace.")
    text: StrictStr = Field(..., description="The text that is embedded and searched.")
    metadata: dict[str, Any] = Field(default_factory=dict, description="Any JSON object.")

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is empty")
        return storable(value, "text")

    @field_validator("id", "metadata")
    @classmethod
    def _storable(cls, value: Any, info: Any) -> Any:
        return storable(value, info.field_name)


class UpsertRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: StrictStr = Field(..., pattern=NAMESPACE_PATTERN)
    documents: list[DocumentIn] = Field(..., min_length=1)

    @field_validator("namespace")
    @classmethod
    def _storable_namespace(cls, value: str) -> str:
        return storable(value, "namespace")


class UpsertResponse(BaseModel):
    upserted: int


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: StrictStr = Field(..., pattern=NAMESPACE_PATTERN)
    query: StrictStr = Field(..., min_length=1)
    k: int = Field(10, ge=1, le=MAX_K, description=f"Results to return (1..{MAX_K}).")
    filter: dict[str, Any] | None = Field(
        None,
        description="Metadata that results must contain: each key's value must match "
        "(JSON containment, so a list matches stored lists that include all its items).",
    )

    @field_validator("query")
    @classmethod
    def _query_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("query is empty")
        return storable(value, "query")

    @field_validator("filter")
    @classmethod
    def _small_filter(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(value) > MAX_FILTER_KEYS:
            raise ValueError(f"at most {MAX_FILTER_KEYS} filter keys")
        return storable(value, "filter")


class SearchResult(BaseModel):
    id: str
    text: str
    metadata: dict[str, Any]
    score: float = Field(..., description="Cosine similarity, -1..1; higher is closer.")


class SearchResponse(BaseModel):
    results: list[SearchResult]
