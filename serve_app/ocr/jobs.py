"""What the ingress sends to the OCR replica and what comes back (no Ray, no torch)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

DOWNLOAD_HINT = "serve-app weights download"  # the fix for a replica without docTR's weights


@dataclass(frozen=True)
class PageJob:
    """One decoded page and when its request stops waiting (``time.time()`` seconds): a page
    whose request has been answered already (408) is not read."""

    image: np.ndarray
    deadline: float


@dataclass(frozen=True)
class PageResult:
    """A read page, or why there is none (``unavailable``: no model; ``expired``: its deadline
    had passed), with what the ingress's admission learns from it."""

    page: Any = None  # OcrPage
    model: dict[str, str] | None = None
    batch_size: int = 0
    batch_leader: bool = False
    page_seconds: float = 0.0
    pages_at_once: int = 1
    replica: str = ""
    unavailable: str | None = None
    fix: str | None = None  # with ``unavailable``: the command that fixes it
    expired: bool = False
