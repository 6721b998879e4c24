"""`serve-app weights download` against a loopback HTTP server standing in for docTR's host.

Nothing here reaches the internet: every URL is 127.0.0.1. The files served are random-initialised
docTR models saved by the test, so the success path uses names carrying their own hash.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from serve_app.cli.main import main
from serve_app.ocr.config import DEFAULT_DET_ARCH, DEFAULT_RECO_ARCH
from serve_app.ocr.doctr_runtime import DoctrRuntime, build_model, sources
from serve_app.ocr.weights import (
    WeightsSource,
    configured_architectures,
    fetch,
    missing_by_name,
)
from serve_app.settings import Settings
from serve_app.startup import StartupError
from serve_app.startup.config import load_config
from serve_app.startup.prepare import prepare_ocr


class _Handler(http.server.SimpleHTTPRequestHandler):
    requests: list[str]

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        self.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[tuple[str, Path, list[str]]]:
    """(base URL, served folder, request log) of a loopback file server."""
    served = tmp_path / "served"
    served.mkdir()
    requests: list[str] = []
    handler = type("Handler", (_Handler,), {"requests": requests})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(served))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", served, requests
    finally:
        server.shutdown()
        server.server_close()


def self_named_weights(folder: Path, kind: str, arch: str) -> tuple[str, torch.nn.Module]:
    """Save random weights named <arch>-<own sha256 prefix>.pt; returns the name."""
    model = build_model(kind, arch)  # type: ignore[arg-type]
    tmp = folder / "tmp.pt"
    torch.save(model.state_dict(), tmp)
    name = f"{arch}-{hashlib.sha256(tmp.read_bytes()).hexdigest()[:8]}.pt"
    tmp.rename(folder / name)
    return name, model


def test_fetch_verifies_and_keeps_the_file(mirror, tmp_path: Path):
    base, served, requests = mirror
    name, model = self_named_weights(served, "detection", DEFAULT_DET_ARCH)
    dest = tmp_path / "weights" / "models" / name
    source = WeightsSource(arch=DEFAULT_DET_ARCH, url=f"{base}/{name}", path=dest)
    messages: list[str] = []
    assert fetch(source, progress=messages.append) == dest
    assert dest.read_bytes() == (served / name).read_bytes()
    assert any("hash verified" in m for m in messages)
    assert not list(dest.parent.glob("*.part"))
    # Present and valid: not fetched again.
    fetch(source, progress=messages.append)
    assert requests == [f"/{name}"]
    state = torch.load(dest, map_location="cpu")
    assert torch.equal(next(iter(state.values())), next(iter(model.state_dict().values())))


def test_downloaded_weights_are_what_the_runtime_loads(mirror, tmp_path: Path, monkeypatch):
    """The download writes docTR's cache layout; the runtime then reports pretrained weights."""
    base, served, _ = mirror
    det_name, det_model = self_named_weights(served, "detection", DEFAULT_DET_ARCH)
    reco_name, _ = self_named_weights(served, "recognition", DEFAULT_RECO_ARCH)
    weights_dir = tmp_path / "weights"
    for arch, name in ((DEFAULT_DET_ARCH, det_name), (DEFAULT_RECO_ARCH, reco_name)):
        fetch(WeightsSource(arch, f"{base}/{name}", weights_dir / "models" / name), progress=print)
    import serve_app.ocr.doctr_runtime as runtime_module

    paths = {True: weights_dir / "models" / det_name, False: weights_dir / "models" / reco_name}
    # The real file names carry docTR's hashes; map each model to the self-named file instead.
    monkeypatch.setattr(runtime_module, "weights_file", lambda d, m: paths["db_" in m.cfg["url"]])
    runtime = DoctrRuntime(weights_dir=weights_dir, device="cpu")
    assert runtime.weights == "pretrained"
    got = next(iter(runtime.predictor.det_predictor.model.state_dict().values()))
    assert torch.equal(got, next(iter(det_model.state_dict().values())))


def test_sources_follow_doctr_names_and_the_mirror(tmp_path: Path):
    found = sources(tmp_path, DEFAULT_DET_ARCH, DEFAULT_RECO_ARCH, mirror="http://m.internal/w/")
    assert [s.path.name for s in found] == [
        "db_mobilenet_v3_large-21748dd0.pt",
        "crnn_mobilenet_v3_small_pt-3b919a02.pt",
    ]
    assert found[0].url == "http://m.internal/w/db_mobilenet_v3_large-21748dd0.pt"
    assert all(s.path.parent == tmp_path / "models" for s in found)
    default = sources(tmp_path, DEFAULT_DET_ARCH, DEFAULT_RECO_ARCH)
    assert default[0].url.startswith("https://")


def test_configured_architectures_come_from_the_config():
    config = load_config(Path("deployments/gpu.yaml"), "127.0.0.1", 8000)
    assert configured_architectures(config) == [(DEFAULT_DET_ARCH, DEFAULT_RECO_ARCH)]
    # the CPU configs read with rapidocr: they need no docTR weights
    for cpu in ("local.yaml", "fly.yaml"):
        config = load_config(Path("deployments") / cpu, "127.0.0.1", 8000)
        assert configured_architectures(config) == []


def test_cli_refuses_a_file_that_does_not_match_its_hash(mirror, tmp_path: Path, capsys):
    base, served, _ = mirror
    # docTR's real file name, but random weights: the hash in the name cannot match.
    model = build_model("detection", DEFAULT_DET_ARCH)
    torch.save(model.state_dict(), served / "db_mobilenet_v3_large-21748dd0.pt")
    target = tmp_path / "weights"
    gpu = ["--config", "deployments/gpu.yaml"]  # the config that reads with docTR
    code = main(["weights", "download", *gpu, "--mirror", base, "--dir", str(target)])
    assert code == 2
    assert "does not match its hash 21748dd0" in capsys.readouterr().err
    assert not list(target.rglob("*.pt*")), "a bad download must leave nothing behind"


def test_cli_reports_http_errors(mirror, tmp_path: Path, capsys):
    base, _, _ = mirror
    gpu = ["--config", "deployments/gpu.yaml"]
    code = main(["weights", "download", *gpu, "--mirror", base, "--dir", str(tmp_path / "w")])
    assert code == 2
    assert "answered HTTP 404" in capsys.readouterr().err


def test_cli_rejects_unknown_architectures(tmp_path: Path, capsys):
    code = main(["weights", "download", "--det-arch", "nope", "--dir", str(tmp_path)])
    assert code == 2
    assert "unknown docTR detection architecture 'nope'" in capsys.readouterr().err


def gpu_config():
    return load_config(Path("deployments/gpu.yaml"), "127.0.0.1", 8000)


def test_doctr_without_weights_is_said_and_refused_when_they_are_required(tmp_path, capsys):
    # `serve-app run`'s preflight names what is missing; the replica reports it unavailable
    settings = Settings(ocr_weights_dir=tmp_path / "none")
    prepare_ocr(gpu_config(), settings)
    out = capsys.readouterr().out
    assert "OCR engine: doctr (weights" in out and f"missing: {DEFAULT_DET_ARCH}" in out
    # ...and refuses to start when docTR's weights are required (the GPU image).
    required = settings.model_copy(update={"ocr_require_weights": True})
    with pytest.raises(StartupError, match="docTR weights are required"):
        prepare_ocr(gpu_config(), required)
    # The CPU configs read with rapidocr, whose weights ship in its package.
    prepare_ocr(load_config(Path("deployments/fly.yaml"), "127.0.0.1", 8000), required)
    assert "OCR engine: rapidocr" in capsys.readouterr().out


def test_present_weights_choose_doctr_by_their_names(tmp_path: Path, capsys):
    weights_dir = tmp_path / "weights"
    assert missing_by_name(weights_dir, DEFAULT_DET_ARCH, DEFAULT_RECO_ARCH) == [
        DEFAULT_DET_ARCH,
        DEFAULT_RECO_ARCH,
    ]
    (weights_dir / "models").mkdir(parents=True)
    for name in ("db_mobilenet_v3_large-21748dd0.pt", "crnn_mobilenet_v3_small_pt-3b919a02.pt"):
        (weights_dir / "models" / name).write_bytes(b"x")  # the names docTR publishes
    assert missing_by_name(weights_dir, DEFAULT_DET_ARCH, DEFAULT_RECO_ARCH) == []
    prepare_ocr(gpu_config(), Settings(ocr_weights_dir=weights_dir))
    assert "missing: none" in capsys.readouterr().out
