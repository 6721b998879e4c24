"""DoctrRuntime with real docTR models (random weights here) and weights-directory loading."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch

from serve_app.ocr.config import DEFAULT_DET_ARCH, DEFAULT_RECO_ARCH
from serve_app.ocr.doctr_runtime import DoctrRuntime, build_model, weights_file
from serve_app.ocr.weights import WeightsError
from tests.helpers.ocr import render_receipt


@pytest.fixture(scope="module")
def runtime() -> DoctrRuntime:
    return DoctrRuntime(allow_random_weights=True, device="cpu")


def test_random_weights_are_reported(runtime: DoctrRuntime):
    assert runtime.weights == "random"
    assert runtime.device == "cpu"


def test_read_returns_the_documented_structure(runtime: DoctrRuntime):
    pages = [render_receipt(), render_receipt(width=800)]
    results = runtime.read(pages)
    assert len(results) == 2
    for result, page in zip(results, pages, strict=True):
        assert (result.height, result.width) == page.shape[:2]
        for line in result.lines:
            x0, y0, x1, y1 = line.box
            assert 0 <= x0 <= x1 <= 1 and 0 <= y0 <= y1 <= 1
            assert 0 <= line.confidence <= 1
            assert isinstance(line.text, str)


def test_empty_batch(runtime: DoctrRuntime):
    assert runtime.read([]) == []


def save_weights(weights_dir: Path, kind: str, arch: str) -> tuple[Path, torch.nn.Module]:
    """Save a random-initialised model where docTR's cache layout expects it, hash-named."""
    model = build_model(kind, arch)  # type: ignore[arg-type]
    expected = weights_file(weights_dir, model)
    expected.parent.mkdir(parents=True, exist_ok=True)
    tmp = expected.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    # docTR names files <arch>-<sha256 prefix>.pt; use this file's own hash prefix.
    stem = expected.name.rsplit("-", 1)[0]
    path = expected.parent / f"{stem}-{digest[:8]}.pt"
    tmp.rename(path)
    return path, model


def test_weights_load_from_a_directory(tmp_path: Path, monkeypatch):
    det_path, det_model = save_weights(tmp_path, "detection", DEFAULT_DET_ARCH)
    reco_path, _ = save_weights(tmp_path, "recognition", DEFAULT_RECO_ARCH)
    # Point the models' expected file names at the files just saved.
    import serve_app.ocr.doctr_runtime as runtime_module

    names = {"detection": det_path, "recognition": reco_path}
    monkeypatch.setattr(
        runtime_module,
        "weights_file",
        lambda d, m: names["detection" if "db_" in m.cfg["url"] else "recognition"],
    )
    loaded = DoctrRuntime(weights_dir=tmp_path, device="cpu")
    assert loaded.weights == "pretrained"
    want = next(iter(det_model.state_dict().values()))
    got = next(iter(loaded.predictor.det_predictor.model.state_dict().values()))
    assert torch.equal(want, got.cpu())


def test_hash_mismatch_is_refused(tmp_path: Path):
    model = build_model("detection", DEFAULT_DET_ARCH)
    path = weights_file(tmp_path, model)
    path.parent.mkdir(parents=True)
    torch.save(model.state_dict(), path)  # the real name, but not the real file
    with pytest.raises(WeightsError, match="does not match its hash"):
        DoctrRuntime(weights_dir=tmp_path, device="cpu", allow_random_weights=True)


def test_missing_weights_name_the_fix(tmp_path: Path):
    with pytest.raises(WeightsError, match="serve-app weights download"):
        DoctrRuntime(weights_dir=tmp_path, device="cpu")


def test_unknown_architecture():
    with pytest.raises(ValueError, match="unknown docTR detection architecture"):
        build_model("detection", "no_such_arch")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")
def test_cuda_fp16_reads_pages():
    """The CUDA path (fp16); the CPU run is test_read_returns_the_documented_structure."""
    runtime = DoctrRuntime(allow_random_weights=True, device="cuda")
    assert runtime.device == "cuda"
    assert next(runtime.predictor.det_predictor.model.parameters()).dtype == torch.float16
    page = render_receipt()
    (result,) = runtime.read([page])
    assert (result.height, result.width) == page.shape[:2]
