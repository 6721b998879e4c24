"""serve_app.standby_answer: a woken standby worker answers the call that woke it, from the
model it loads for its replica (a real standby process, the real model)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import numpy as np
import pytest

from serve_app import prestart, standby_answer
from serve_app.embeddings import preload
from serve_app.embeddings.jobs import EmbedJob
from tests.helpers.standby import start_standby

ROOT = Path(__file__).resolve().parents[2]

ANSWER_PROBE = (  # a stand-in for Ray's worker in a standby: idle until it has answered
    "import time\n"
    "from ray._raylet import setproctitle\n"
    "from serve_app.embeddings import preload\n"
    "setproctitle('ray::IDLE')\n"  # as Ray's worker titles an idle worker
    "print('ready', flush=True)\n"
    "deadline = time.monotonic() + 180\n"
    "while preload.answered < 2 and time.monotonic() < deadline:\n"
    "    time.sleep(0.02)\n"
    "runtime = preload.take(preload.settings_kwargs())\n"  # the replica's constructor
    "print('answered', preload.answered, 'taken', preload.outcome(), flush=True)\n"
)


def test_a_woken_standby_answers_the_call_that_woke_it(
    tmp_path: Path, monkeypatch, embedding_runtime
):
    proc = start_standby(tmp_path, ANSWER_PROBE)
    try:
        assert proc.stdout.readline() == "ready\n"
        monkeypatch.setattr(prestart, "_last_wake", {})
        assert standby_answer.ask("embeddings", {"texts": ["x"]}, 5) is None  # none woken yet
        assert prestart.wake("embeddings") >= 1
        assert proc.pid in prestart.woken("embeddings", standby_answer.WINDOW_S)
        # a request it cannot answer is an error, and the caller waits on Serve instead
        assert standby_answer.ask("embeddings", {"texts": []}, 30) is None
        texts = ["oat milk", "Oatly barista edition 1 l"]
        result = preload.ask_standby("embed", EmbedJob(texts, 12), 180)
        # the first answer comes while torch still loads: from the numpy twin; an input
        # over its limit waits for the replica's model (torch)
        large = ["milk " * 250] * (preload.NUMPY_MAX_TOKENS // 250 + 1)
        large_answer = standby_answer.ask("embeddings", {"texts": large}, 180)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert result is not None, err
    expected = embedding_runtime.embed(texts)
    assert result.vectors.shape == (2, 384)
    assert np.allclose(result.vectors, expected.vectors, atol=1e-5)
    assert result.token_counts == expected.token_counts
    assert result.batch_leader and result.batch_texts == 2
    assert large_answer is not None and large_answer[0]["encoder"] == "torch", err
    assert large_answer[0]["shape"] == [len(large), 384]
    # it answered before a replica took its model, and the replica took that same model
    assert "answered 2 taken taken" in out, (out, err)


def test_only_a_standby_woken_in_the_window_is_asked(monkeypatch):
    monkeypatch.setattr(prestart, "_last_wake", {"embeddings": -1000.0})
    monkeypatch.setattr(prestart, "_woken", {"embeddings": [os.getpid()]})
    assert prestart.woken("embeddings", standby_answer.WINDOW_S) == []
    assert preload.ask_standby("embed", EmbedJob(["x"], 1), 1) is None
    assert preload.ask_standby("info", None, 1) is None  # only embed calls are answered


def test_messages_carry_a_header_and_a_tail():
    left, right = socket.socketpair()
    with left, right:
        standby_answer.send(left, {"shape": [1, 2]}, b"\x00" * 8)
        header, tail = standby_answer.receive(right)
        assert header == {"shape": [1, 2], "bytes": 8} and tail == b"\x00" * 8
        assert standby_answer.same_user(right)
        # a header beyond the limit is refused before it is read
        left.sendall(standby_answer._LENGTH.pack(standby_answer.MAX_HEADER_BYTES + 1))
        with pytest.raises(ValueError, match="at most"):
            standby_answer.receive(right)
        left.sendall(standby_answer._LENGTH.pack(2) + b"[]")
        with pytest.raises(ValueError, match="byte count"):
            standby_answer.receive(right)
