"""Request and response schemas for ``POST /v1/embeddings`` (OpenAI-compatible)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator


class EmbeddingRequest(BaseModel):
    """OpenAI's embeddings request; token-id inputs are not supported."""

    model_config = ConfigDict(extra="ignore")

    input: StrictStr | list[StrictStr] = Field(
        ..., description="One text or a list of texts (not empty)."
    )
    model: str | None = Field(None, description="Model name; defaults to the served model.")
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, description="Must equal the model's dimensions.")
    user: str | None = None

    @field_validator("input")
    @classmethod
    def _not_empty(cls, value: str | list[str]) -> str | list[str]:
        texts = [value] if isinstance(value, str) else value
        if not texts:
            raise ValueError("input must not be an empty list")
        for i, text in enumerate(texts):
            if not text.strip():
                raise ValueError(f"input[{i}] is empty")
        return value

    def texts(self) -> list[str]:
        """The inputs as a list."""
        return [self.input] if isinstance(self.input, str) else list(self.input)


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(
        ..., description="Floats, or base64 of little-endian float32 when asked."
    )


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: EmbeddingUsage
