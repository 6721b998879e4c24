"""`serve-app embeddings export | download`: the model's ONNX export made on demand, and another
model fetched at image build, pinned and checked against the SHA-256 of its files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from serve_app.cli.embeddings import files_sha256
from serve_app.cli.main import main
from serve_app.embeddings.model_files import default_model_dir


def test_export_says_what_it_serves_and_where(tmp_path: Path, capsys):
    from serve_app.settings import Settings

    onnx_dir = Settings().embeddings_onnx_path()  # the session's export, made once
    assert main(["embeddings", "export", "--onnx-dir", str(onnx_dir)]) == 0
    out = capsys.readouterr().out
    assert "BertModel, pooling mean, 384 dimensions, 256 tokens; ONNX export in" in out
    assert main(["embeddings", "export", "--model-dir", str(tmp_path)]) == 2
    assert "holds no model (no config.json)" in capsys.readouterr().err


@pytest.fixture
def hub(monkeypatch) -> list[tuple]:
    """The Hugging Face Hub cannot be reached from here: its client's snapshot download is
    replaced by a copy of the packaged model's directory (what the Hub would serve for it),
    recording what was asked."""
    import huggingface_hub

    asked: list[tuple] = []

    def snapshot_download(repo_id, *, revision, local_dir, ignore_patterns):
        asked.append((repo_id, revision, tuple(ignore_patterns)))
        shutil.copytree(default_model_dir(), local_dir)
        (Path(local_dir) / ".cache").mkdir()  # the Hub client's own bookkeeping
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return asked


def test_download_keeps_a_model_only_when_its_files_hash_as_pinned(tmp_path, hub, capsys):
    target = tmp_path / "model"
    expected = files_sha256(default_model_dir())
    args = ["embeddings", "download", "org/model", "--revision", "abc123", "--dir", str(target)]
    # no hash to check against: refused, naming the one to pin after checking the files
    assert main(args) == 2
    assert f"pin --sha256 {expected}" in capsys.readouterr().err
    assert not target.exists()
    # a hash that does not match: refused, nothing left behind
    assert main([*args, "--sha256", "0" * 64]) == 2
    assert f"hash to {expected}, not {'0' * 64}" in capsys.readouterr().err
    assert not target.exists() and not list(tmp_path.iterdir())
    # the pinned hash: kept, without the Hub's bookkeeping, ready to serve
    assert main([*args, "--sha256", expected]) == 0
    assert (target / "config.json").is_file() and not (target / ".cache").exists()
    assert files_sha256(target) == expected
    assert hub[-1][:2] == ("org/model", "abc123") and "onnx/*" in hub[-1][2]
