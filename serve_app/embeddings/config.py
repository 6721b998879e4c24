"""The embeddings deployment's ``user_config``, typed (the configuration docs are made from it)."""

from __future__ import annotations

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

from serve_app.embeddings.jobs import JOB_MAX_TOKENS


class EmbeddingsConfig(BaseModel):
    """The ``embeddings`` deployment's ``user_config``, applied by ``reconfigure`` live."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    max_batch_tokens: int = Field(
        16384,
        ge=JOB_MAX_TOKENS,
        description="estimated tokens per batch across requests (@serve.batch with a token "
        f"batch_size_fn); at least one job ({JOB_MAX_TOKENS})",
    )
    batch_wait_timeout_s: float = Field(
        0.005,
        ge=0,
        description="how long a batch waits to fill; 0: a free batch thread takes what is "
        "queued at once (the ingress has merged what waited for a call)",
    )
    forward_batch_tokens: int = Field(
        16384, ge=256, description="padded tokens per forward pass (bounds memory)"
    )
    parallel_batches: int = Field(
        1, ge=1, description="batches embedded at once, each on its own thread"
    )
    threads: int = Field(
        0,
        ge=0,
        validation_alias=AliasChoices("threads", "torch_threads"),
        description="CPU threads of the model, shared by the batches that run at once (each "
        "gets threads / parallel_batches: an ONNX Runtime session's threads are fixed); 0: "
        "every core. `torch_threads`, its former name, is read too",
    )
