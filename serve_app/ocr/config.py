"""The OCR deployment's ``user_config``: one typed source for its keys, defaults and meaning
(validated in ``reconfigure``; the configuration docs are generated from it)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_DET_ARCH = "db_mobilenet_v3_large"
DEFAULT_RECO_ARCH = "crnn_mobilenet_v3_small"


class OcrConfig(BaseModel):
    """``user_config`` of the ``ocr`` deployment, applied by ``reconfigure`` without a restart."""

    model_config = ConfigDict(extra="forbid")

    engine: Literal["doctr", "rapidocr"] = Field(
        "rapidocr",
        description="rapidocr (weights inside its package: works offline; the CPU configs) or "
        "doctr (its weights baked into the GPU image or downloaded; gpu.yaml)",
    )
    det_arch: str = Field(DEFAULT_DET_ARCH, description="docTR's detection architecture")
    reco_arch: str = Field(DEFAULT_RECO_ARCH, description="docTR's recognition architecture")
    reco_batch_size: int = Field(
        256, ge=1, description="docTR: word crops per recognition pass inside the predictor"
    )
    max_batch_size: int = Field(
        4, ge=1, description="pages per batch across requests (@serve.batch)"
    )
    batch_wait_timeout_s: float = Field(
        0.02, ge=0, description="how long a page batch waits to fill"
    )
    parallel_batches: int = Field(
        1, ge=1, description="batches read at once, each on its own thread"
    )
    torch_threads: int = Field(
        0,
        ge=0,
        description="CPU threads shared by the running batches (0: every core); for rapidocr, "
        "each of parallel_batches gets its share when the engine is built",
    )


def ocr_configs(config: Any) -> list[OcrConfig]:
    """The ``user_config`` of each application's OCR deployment in a validated Serve config."""
    return [
        OcrConfig.model_validate(
            next((d.user_config or {} for d in app.deployments if d.name == "ocr"), {})
        )
        for app in config.applications
        if "ocr" in (app.args or {}).get("models", ["ocr"])
    ]
