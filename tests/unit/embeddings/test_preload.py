"""serve_app.embeddings.preload: the model loaded on a thread is the one the replica takes."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from serve_app.embeddings import preload
from serve_app.embeddings.runtime import EmbeddingRuntime


@pytest.fixture(autouse=True)
def no_preload_left():
    yield
    preload._preload = None  # a test's unclaimed preload does not reach the next


def test_take_returns_the_preloaded_runtime_once():
    kwargs = preload.settings_kwargs()
    preload.start(kwargs)
    assert any(t.name == "preload-embeddings" for t in threading.enumerate())
    runtime = preload.take(kwargs)
    assert isinstance(runtime, EmbeddingRuntime)
    assert runtime.embed(["oat milk"]).vectors.shape == (1, 384)
    assert preload.outcome() == "taken"
    assert preload.take(kwargs) is None  # taken: a second replica loads its own
    assert preload.outcome() == "this process preloaded no model"


def test_take_with_other_settings_loads_its_own():
    kwargs = preload.settings_kwargs()
    preload.start(kwargs)
    assert preload.take({**kwargs, "max_tokens": 128}) is None
    assert preload.outcome() == "the preloaded model has other settings"


def test_take_without_preload_is_none():
    assert preload.take(preload.settings_kwargs()) is None


def test_a_failed_preload_is_reported_and_loads_again(tmp_path):
    kwargs = {**preload.settings_kwargs(), "model_dir": tmp_path}  # no model here
    preload.start(kwargs)
    assert preload.take(kwargs) is None
    assert preload.outcome().startswith("the preload failed: ")


def test_preloaded_and_fresh_runtimes_agree(embedding_runtime: EmbeddingRuntime):
    kwargs = preload.settings_kwargs()
    preload.start(kwargs)
    runtime = preload.take(kwargs)
    texts = ["Oatly barista edition", "free-range eggs"]
    np.testing.assert_allclose(
        runtime.embed(texts).vectors, embedding_runtime.embed(texts).vectors, atol=1e-6
    )


def test_only_a_prestarted_worker_exits_unclaimed(monkeypatch):
    """The unclaimed exit is for the prestarted Ray worker (serve_app.prestart passes the
    limit); any other process that preloads never ends itself."""
    exits = []
    monkeypatch.setattr(preload.os, "_exit", exits.append)
    kwargs = preload.settings_kwargs()
    preload.start(kwargs)  # no limit
    thread = next(t for t in threading.enumerate() if t.name == "preload-embeddings")
    thread.join(120)
    assert not thread.is_alive() and exits == []
    preload._preload = None
    preload.start(kwargs, exit_unclaimed_after_s=0.1)
    thread = next(t for t in threading.enumerate() if t.name == "preload-embeddings")
    thread.join(120)
    assert exits == [0]
