"""Device and CPU-thread choices shared by the model runtimes (no Ray)."""

from __future__ import annotations

import os


def resolve_device(requested: str) -> str:
    """``auto`` picks CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    import torch  # only the replicas that run a model load torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for but no CUDA device is visible")
    return requested


def torch_threads(threads: int) -> int:
    """``threads``, or every core this process may use for 0."""
    return threads if threads > 0 else len(os.sched_getaffinity(0))
