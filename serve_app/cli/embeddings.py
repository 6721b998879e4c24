"""``serve-app embeddings``: the embedding model's files: its ONNX ``export``, and the
``download`` of another model from the Hugging Face Hub, pinned and hash-checked."""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path
from typing import Any

from serve_app.cli.errors import CliError
from serve_app.embeddings.model_files import (
    ModelNotServable,
    default_model_dir,
    ensure_export,
    file_sha256,
)
from serve_app.settings import get_settings

# Files of a Hub repository a sentence-transformers model does not need (other formats).
SKIP = ["onnx/*", "openvino/*", "*.h5", "*.msgpack", "*.ot", "*.gguf", "coreml/*"]


def files_sha256(model_dir: Path) -> str:
    """One SHA-256 for a model directory: of each file's relative path and SHA-256, sorted."""
    lines = [
        f"{path.relative_to(model_dir).as_posix()} {file_sha256(path)}\n"
        for path in sorted(p for p in model_dir.rglob("*") if p.is_file())
    ]
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def download(repo: str, revision: str, sha256: str | None, target: Path) -> Path:
    """``repo`` at ``revision`` into ``target``, kept only when its files hash to ``sha256``
    (without one: refused, naming the hash to pin after checking the files)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError

    partial = target.with_name(f".{target.name}.part")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        snapshot_download(repo, revision=revision, local_dir=partial, ignore_patterns=SKIP)
    except (HfHubHTTPError, OSError, ValueError) as exc:
        raise CliError(f"cannot download {repo}@{revision}: {exc}") from None
    shutil.rmtree(partial / ".cache", ignore_errors=True)  # the hub's own bookkeeping
    found = files_sha256(partial)
    if found != sha256:
        shutil.rmtree(partial, ignore_errors=True)
        if sha256 is None:
            raise CliError(
                f"{repo}@{revision} has no SHA-256 to check against: check the files, then "
                f"pin --sha256 {found}"
            )
        raise CliError(f"{repo}@{revision}: its files hash to {found}, not {sha256}")
    shutil.rmtree(target, ignore_errors=True)
    partial.rename(target)
    return target


def cmd_export(args: argparse.Namespace) -> int:
    settings = get_settings()
    model_dir = Path(args.model_dir or settings.embeddings_model_dir or default_model_dir())
    onnx_dir = Path(args.onnx_dir) if args.onnx_dir else settings.embeddings_onnx_path()
    try:
        export = ensure_export(model_dir, onnx_dir, lambda line: print(line, flush=True))
    except ModelNotServable as exc:
        raise CliError(str(exc)) from None
    print(f"{model_dir}: {export.describe()}; ONNX export in {export.path}", flush=True)
    return 0


def cmd_download(args: argparse.Namespace) -> int:
    target = download(args.repo, args.revision, args.sha256, Path(args.dir))
    print(f"{args.repo}@{args.revision} in {target} (files SHA-256 {args.sha256})", flush=True)
    return 0


def add_parser(sub: Any) -> None:
    embeddings = sub.add_parser("embeddings", help="the embedding model's files")
    embeddings_sub = embeddings.add_subparsers(dest="embeddings_command", required=True)
    export = embeddings_sub.add_parser(
        "export",
        help="make the model's ONNX export once (needs the `export` extra: torch); "
        "`serve-app run` does this by itself when it finds none",
    )
    export.add_argument("--model-dir", help="default: SERVE_APP_EMBEDDINGS_MODEL_DIR")
    export.add_argument("--onnx-dir", help="default: SERVE_APP_EMBEDDINGS_ONNX_DIR")
    export.set_defaults(func=cmd_export)
    download = embeddings_sub.add_parser(
        "download",
        help="fetch a sentence-transformers model from the Hugging Face Hub (the image "
        "build's EMBEDDINGS_MODEL; needs the network and the `export` extra)",
    )
    download.add_argument("repo", help="the model's repository, e.g. BAAI/bge-small-en-v1.5")
    download.add_argument("--revision", required=True, help="a commit of the repository")
    download.add_argument("--sha256", help="the SHA-256 of its files (serve-app prints it)")
    download.add_argument("--dir", required=True, help="where the model directory goes")
    download.set_defaults(func=cmd_download)
