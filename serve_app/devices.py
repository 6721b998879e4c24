"""Device and CPU-thread choices shared by the model runtimes (no Ray; torch only where a GPU
is, so that a CPU process never loads it)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")  # one entry per GPU the driver sees


def resolve_device(requested: str) -> str:
    """``auto`` picks CUDA when an NVIDIA GPU and torch are both here, else CPU (without
    importing torch); ``cuda`` without a usable GPU is an error."""
    if requested == "cpu":
        return "cpu"
    gpus = NVIDIA_GPUS.is_dir() and any(NVIDIA_GPUS.iterdir())
    if requested == "auto" and not (gpus and importlib.util.find_spec("torch")):
        return "cpu"
    import torch  # a GPU is here: torch decides

    if torch.cuda.is_available():
        return "cuda"
    if requested == "auto":
        return "cpu"
    raise RuntimeError("device 'cuda' was asked for but no CUDA device is visible")


def cpu_threads(threads: int) -> int:
    """``threads``, or every core this process may use for 0."""
    return threads if threads > 0 else len(os.sched_getaffinity(0))
