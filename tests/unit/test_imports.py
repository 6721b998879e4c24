"""What each side of the server imports: the ingress, the app's build step and `serve-app`
itself load no model library (torch, transformers, docTR, Z3, HiGHS, rapidocr, onnxruntime,
OpenCV); a replica loads only its own, and on a CPU never torch. A top-level import of one of
them in the wrong module makes every Serve process that imports it slower to start and larger
at idle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL_LIBRARIES = (
    "torch", "transformers", "doctr", "z3", "highspy", "rapidocr", "onnxruntime", "cv2",
)  # fmt: skip


def loaded_after(*modules: str, among: tuple[str, ...] = MODEL_LIBRARIES) -> list[str]:
    """The libraries ``among`` (top-level names) in sys.modules of a fresh interpreter after
    importing ``modules``."""
    code = (
        f"import sys, {', '.join(modules)}; "
        f"print(sorted({{m.partition('.')[0] for m in sys.modules}} & set({among!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return eval(done.stdout.strip())  # a printed list of names


@pytest.mark.parametrize(
    "modules",
    [
        ("serve_app.app",),  # the Serve app's build step imports this, and every deployment
        ("serve_app.ingress",),
        ("serve_app.cli.main", "serve_app.cli.run"),  # serve-app itself
        ("serve_app.solver.problem", "serve_app.solver.evaluation", "serve_app.solver.serving"),
        ("serve_app.ocr.serving", "serve_app.ocr.runtime", "serve_app.ocr.weights"),
        ("serve_app.embeddings.serving", "serve_app.embeddings.config", "serve_app.ocr.config"),
        # the CPU replica's: onnxruntime only when a session is made, never torch
        ("serve_app.embeddings.runtime", "serve_app.embeddings.model_files"),
    ],
    ids=["app", "ingress", "cli", "solver-validation", "ocr-ingress-side", "configs", "onnx"],
)
def test_no_model_library_is_imported(modules: tuple[str, ...]):
    assert loaded_after(*modules) == []


def test_the_check_can_fail():
    """The replicas' runtimes do load theirs (so the check above sees an import)."""
    assert "torch" in loaded_after("serve_app.embeddings.torch_encoder")
    assert "z3" in loaded_after("serve_app.solver.search")


def test_serve_app_runs_side_of_the_bridge_is_standard_library_only():
    """`serve-app run` spawns the bridge before its slower imports: the side it imports for
    that (serve_app.startup.bridge.process) loads no web, settings or array library."""
    libraries = ("fastapi", "starlette", "pydantic", "httpx", "numpy", "psutil", "yaml")
    assert loaded_after("serve_app.startup.bridge.process", among=libraries) == []


def test_the_ingress_side_of_each_capability_imports_without_ray():
    """`serving.py` (and the routes on it) is the ingress side: request checks and the call
    to a deployment through a client it is given; it imports no Ray, so it is tested, and
    served by the bridge, without a cluster."""
    routes = [f"serve_app.{c}.routes" for c in ("embeddings", "ocr", "solver", "store")]
    assert loaded_after(*routes, among=("ray",)) == []
    assert loaded_after("serve_app.ingress", among=("ray",)) == ["ray"]  # the check can fail
