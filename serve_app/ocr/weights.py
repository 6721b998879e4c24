"""docTR's weights: their names and hashes, and fetching them (the only code that touches the
network, run by ``serve-app weights download`` in the CUDA image's build, never by the server)."""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from serve_app.ocr.config import ocr_configs

_HASH_IN_NAME = re.compile(r"-([a-f0-9]+)\.")


class WeightsError(RuntimeError):
    """docTR weights are missing or do not match their hash."""


def verify_hash(path: Path, name: str | None = None) -> None:
    """The file's SHA-256 must start with the hash in its name (docTR's convention);
    ``name`` is the file name to take the hash from when ``path`` is a temporary file."""
    name = name or path.name
    match = _HASH_IN_NAME.search(name)
    if not match:
        raise WeightsError(f"{name} carries no hash in its name")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digest.startswith(match.group(1)):
        raise WeightsError(f"{name} does not match its hash {match.group(1)} (got {digest[:8]})")


def missing_by_name(weights_dir: Path, det_arch: str, reco_arch: str) -> list[str]:
    """The architectures without a weights file (``models/<arch>[_pt]-<sha256 prefix>.pt``) in
    ``weights_dir``: by name only, without importing docTR; the replica checks the hashes."""
    models = weights_dir / "models"
    names = [p.name for p in models.iterdir()] if models.is_dir() else []
    return [
        arch
        for arch in (det_arch, reco_arch)
        if not any(re.fullmatch(rf"{re.escape(arch)}(_pt)?-[0-9a-f]+\.pt", n) for n in names)
    ]


@dataclass(frozen=True)
class WeightsSource:
    """One weights file: where docTR publishes it and where the cache layout keeps it."""

    arch: str
    url: str
    path: Path


def configured_architectures(config: Any) -> list[tuple[str, str]]:
    """(det_arch, reco_arch) of the OCR deployments that run docTR in a Serve config, once each."""
    doctr = [ocr for ocr in ocr_configs(config) if ocr.engine == "doctr"]
    return list(dict.fromkeys((ocr.det_arch, ocr.reco_arch) for ocr in doctr))


def print_progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fetch(source: WeightsSource, progress: Callable[[str], None] = print_progress) -> Path:
    """Download one file to a temporary name, check its hash, then move it into place; a
    present file with the right hash is kept, and a mismatch leaves nothing behind."""
    if source.path.is_file():
        verify_hash(source.path)
        progress(f"{source.arch}: {source.path} present, hash verified")
        return source.path
    source.path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=source.path.name, suffix=".part", dir=source.path.parent)
    tmp = Path(tmp_name)
    try:
        with (
            os.fdopen(fd, "wb") as out,
            httpx.stream("GET", source.url, timeout=60.0, follow_redirects=True) as response,
        ):
            if response.status_code != 200:
                raise WeightsError(f"{source.url} answered HTTP {response.status_code}")
            total = int(response.headers.get("content-length") or 0)
            done, shown = 0, time.monotonic()
            progress(f"{source.arch}: downloading {source.url}")
            for chunk in response.iter_bytes(1 << 20):
                out.write(chunk)
                done += len(chunk)
                if time.monotonic() - shown > 2:
                    shown = time.monotonic()
                    of = f" of {total / 1e6:.1f}" if total else ""
                    progress(f"{source.arch}: {done / 1e6:.1f}{of} MB")
        verify_hash(tmp, name=source.path.name)
        tmp.rename(source.path)
        progress(f"{source.arch}: saved {source.path} ({done / 1e6:.1f} MB, hash verified)")
        return source.path
    finally:
        tmp.unlink(missing_ok=True)
