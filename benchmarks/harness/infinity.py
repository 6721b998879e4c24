"""Infinity (``infinity-emb``, torch engine), the peer embeddings server, in a venv of its own.

Infinity 0.0.78 needs sentence-transformers < 4, transformers < 5 and numpy < 2; the server's
venv has 6.x, 5.x and 2.x, so Infinity lives in ``benchmarks/.venv-infinity`` (made on first
use, minutes: torch 2.14.1 and its CUDA wheels, about 6 GB, come from this machine's disk).
This module only builds commands; it imports nothing from Infinity.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / "benchmarks" / ".venv-infinity"
STAMP = VENV / ".infinity-requirements"

# Every pin was installed together and served all-MiniLM-L6-v2 offline (cosine 1.0 against
# sentence-transformers). Infinity's own caps are the reason for most of them.
REQUIREMENTS: tuple[str, ...] = (
    "infinity-emb[server,torch]==0.0.78",  # the newest release; HTTP server + torch engine
    "torch==2.14.1",  # the server's own torch, from this disk (a newer one is a GB download)
    "sentence-transformers==3.4.1",  # infinity-emb: >=3.0.1,<4 (3.4.1 is the last 3.x)
    "transformers==4.57.6",  # sentence-transformers 3.4.1: <5
    "tokenizers==0.22.2",  # transformers 4.57: <=0.23.0
    "huggingface-hub==0.36.2",  # transformers 4.57: <1.0
    "numpy==1.26.4",  # infinity-emb: <2
    "fastapi==0.165.0",  # infinity-emb sets only a floor: the HTTP stack as it was proven
    "starlette==1.10.0",
    "pydantic==2.14.4",
    "uvicorn[standard]==0.32.1",  # infinity-emb: <0.33
    "click==8.1.8",  # infinity-emb: <8.2 (typer 0.12 breaks on click 8.2)
    "typer==0.12.5",  # infinity-emb: <0.13
)

SERVED_MODEL_NAME = "all-MiniLM-L6-v2"  # the name the server under test reports, too
URL_PREFIX = "/v1"
EMBEDDINGS_PATH = f"{URL_PREFIX}/embeddings"  # OpenAI-compatible, as the server's own route
HEALTH_PATH = "/health"  # outside the URL prefix
DEFAULT_BATCH_SIZE = 32  # Infinity's own default

OFFLINE_ENV: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "DO_NOT_TRACK": "1",  # Infinity's telemetry (posthog) would try the network
    "INFINITY_ANONYMOUS_USAGE_STATS": "0",
}


def _stamp_text() -> str:
    return "\n".join(REQUIREMENTS) + "\n"


def ensure_venv(progress: Callable[[str], object] = print) -> Path:
    """Make ``benchmarks/.venv-infinity`` with the pinned requirements unless its stamp says
    so already; returns its python."""
    python = VENV / "bin" / "python"
    if python.exists() and STAMP.exists() and STAMP.read_text() == _stamp_text():
        return python
    start = time.monotonic()
    if not python.exists():
        progress(f"infinity: creating {VENV} ...")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    progress(
        f"infinity: pip-installing {REQUIREMENTS[0]} and {len(REQUIREMENTS) - 1} pins "
        "(minutes: about 6 GB, torch from this disk) ..."
    )
    STAMP.unlink(missing_ok=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--progress-bar", "off", *REQUIREMENTS],
        check=True,
    )
    STAMP.write_text(_stamp_text())
    progress(f"infinity: venv ready in {time.monotonic() - start:.0f} s")
    return python


def infinity_command(
    python: Path,
    model_dir: Path,
    port: int,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    warmup: bool = False,
) -> tuple[list[str], dict[str, str]]:
    """Command line and extra environment for Infinity serving ``model_dir`` on CPU at
    127.0.0.1:``port``, offline, as ``SERVED_MODEL_NAME`` at ``EMBEDDINGS_PATH``.

    Plain float32 eager torch: no torch.compile, no BetterTransformer (optimum isn't
    installed), no vector cache, and no start-up warm-up unless ``warmup`` (it times batches
    of 32 x 256 tokens, about 13 s here, before the server answers)."""
    cmd = [
        str(python),
        "-m",
        "infinity_emb.cli",
        "v2",
        "--model-id",
        str(model_dir),
        "--served-model-name",
        SERVED_MODEL_NAME,
        "--engine",
        "torch",
        "--device",
        "cpu",
        "--dtype",
        "float32",
        "--batch-size",
        str(batch_size),
        "--model-warmup" if warmup else "--no-model-warmup",
        "--no-compile",
        "--no-bettertransformer",
        "--no-vector-disk-cache",
        "--url-prefix",
        URL_PREFIX,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    return cmd, dict(OFFLINE_ENV)
