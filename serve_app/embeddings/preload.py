"""The embedding model loaded on a thread from the start of its replica's process.

``python -m serve_app.prestart embeddings`` (the embeddings replica's worker, see
``serve_app/prestart.py``) calls :func:`start` before Ray's worker code runs; the replica's
constructor calls :func:`take`, which waits for the load to finish. A prestarted worker that
no replica takes within ``UNCLAIMED_EXIT_S`` exits, so that the memory goes back.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from serve_app.logs import get_logger

log = get_logger(__name__)

# A preloaded model that no replica took by then is given back (its worker process exits).
UNCLAIMED_EXIT_S = 120.0


class _Preload:
    """The loading thread of this process and what it loaded."""

    def __init__(self, kwargs: dict[str, Any], exit_unclaimed_after_s: float | None):
        self.kwargs = kwargs
        self.exit_unclaimed_after_s = exit_unclaimed_after_s
        self.runtime: Any = None
        self.error: BaseException | None = None
        self.taken = threading.Event()
        self.loaded = threading.Event()

    def run(self) -> None:
        started = time.perf_counter()
        try:
            from serve_app.embeddings.runtime import EmbeddingRuntime

            runtime = EmbeddingRuntime(**self.kwargs)
            runtime.embed(["warm up"])  # the first forward pass is slow
            self.runtime = runtime
            log.info("embedding model preloaded in %.2fs", time.perf_counter() - started)
        except BaseException as exc:  # the replica loads its own and reports the error
            self.error = exc
        finally:
            self.loaded.set()
        limit = self.exit_unclaimed_after_s
        if limit is not None and not self.taken.wait(limit) and not _is_actor():
            log.warning(
                "no embeddings replica took the preloaded model in %.0f s; this worker exits",
                limit,
            )
            os._exit(0)


_lock = threading.Lock()
_preload: _Preload | None = None
_started: _Preload | None = None  # the same, kept after take(): answer() uses its runtime
_outcome = "not asked"  # what the last take() found (/health reports it)
_answer_lock = threading.Lock()  # one answer() at a time: a forward pass uses every core
answered = 0  # requests this process answered as a woken standby (serve_app/standby_answer.py)


def _is_actor() -> bool:
    """Whether this process hosts a Ray actor (a replica) by now."""
    import ray

    return ray.is_initialized() and ray.get_runtime_context().get_actor_id() is not None


def settings_kwargs() -> dict[str, Any]:
    from serve_app.settings import get_settings

    settings = get_settings()
    return {
        "model_dir": settings.embeddings_model_dir,
        "device": settings.embeddings_device,
        "max_tokens": settings.embeddings_max_tokens,
    }


def start(kwargs: dict[str, Any], exit_unclaimed_after_s: float | None = None) -> None:
    """Start loading ``EmbeddingRuntime(**kwargs)`` on a thread of this process (once).
    With ``exit_unclaimed_after_s`` (a prestarted Ray worker, nothing else), the process
    exits when no replica has taken the model by then and it is not an actor."""
    from serve_app.prestart import background

    global _preload, _started
    with _lock:
        if _preload is None:
            _preload = _started = _Preload(kwargs, exit_unclaimed_after_s)
            background(_preload.run, "preload-embeddings")


def start_default() -> None:
    """:func:`start` with this process's settings (a standby worker woken by a request,
    serve_app/prestart.py); exits when no replica takes the model in time."""
    start(settings_kwargs(), UNCLAIMED_EXIT_S)


def take(kwargs: dict[str, Any]) -> Any:
    """The runtime this process preloaded with the same ``kwargs`` (waiting for it to finish
    loading), or None: then the caller loads its own (:func:`outcome` says why)."""
    global _preload, _outcome, _numpy
    with _lock:
        preload, _preload = _preload, None
    if preload is None:
        _outcome = "this process preloaded no model"
        return None
    preload.taken.set()  # a replica lives in this process now: it never exits as unclaimed
    if preload.kwargs != kwargs:
        _outcome = "the preloaded model has other settings"
        return None
    preload.loaded.wait()
    with _answer_lock:
        _numpy = None  # the numpy twin answered while this loaded (answer()); its memory back
    if preload.error is not None:
        log.warning("the preloaded embedding model failed (%r); loading again", preload.error)
        _outcome = f"the preload failed: {preload.error!r}"
        return None
    _outcome = "taken"
    return preload.runtime


def answer(request: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """In a standby worker woken by a request (serve_app/standby_answer.py): embed
    ``request["texts"]`` with the model this process loads for its replica (the load starts
    now if no wake came first) or, while that still loads (torch's import is most of it),
    with the same model on numpy (``numpy_bert.py``, loaded once, for inputs of at most
    :data:`NUMPY_MAX_TOKENS` tokens; larger ones wait for the replica's model). The header
    gives the vectors' shape, the token counts, the model's seconds and which encoder ran;
    the tail is the vectors (float32, little-endian)."""
    global answered
    texts = request.get("texts")
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts) or not texts:
        raise ValueError("texts: a non-empty list of strings")
    if _started is None:  # no wake came first (else the replica may have taken it by now)
        start_default()
    preload = _started
    assert preload is not None
    with _answer_lock:
        started = time.perf_counter()
        found = None if preload.loaded.is_set() else _numpy_embed(preload.kwargs, texts)
        if found is not None:
            vectors, token_counts = found
            encoder = "numpy"
        else:
            preload.loaded.wait()
            if preload.runtime is None:
                raise RuntimeError(f"the model did not load: {preload.error!r}")
            output = preload.runtime.embed(texts)
            vectors, token_counts, encoder = output.vectors, output.token_counts, "torch"
        seconds = time.perf_counter() - started
        answered += 1
    vectors = vectors.astype("<f4", copy=False)
    header = {
        "shape": list(vectors.shape),
        "token_counts": token_counts,
        "seconds": seconds,
        "encoder": encoder,
    }
    return header, vectors.tobytes()


# Inputs the woken standby embeds on numpy while torch loads: about 0.05 s here (numpy runs
# BERT about 3x slower than torch on large batches; a larger input waits for torch).
NUMPY_MAX_TOKENS = 4096
_numpy: Any = None


def _numpy_embed(kwargs: dict[str, Any], texts: list[str]) -> Any:
    """``texts`` embedded with :class:`NumpyEmbedder` (loaded on first use, with the
    replica's model settings), or None when they are over :data:`NUMPY_MAX_TOKENS`."""
    global _numpy
    from serve_app.embeddings.bert_config import default_model_dir
    from serve_app.embeddings.numpy_bert import NumpyEmbedder

    if _numpy is None:
        model_dir = kwargs.get("model_dir") or default_model_dir()
        _numpy = NumpyEmbedder(Path(model_dir), kwargs.get("max_tokens", 256))
    embedder = _numpy
    lengths = [len(e.ids) for e in embedder.tokenizer.encode_batch(texts)]
    if sum(lengths) > NUMPY_MAX_TOKENS:
        return None
    return embedder.embed(texts)


def ask_standby(method: str, job: Any, timeout_s: float) -> Any:
    """In the ingress: ``job`` (an :class:`EmbedJob`) embedded by a standby worker woken in the
    last seconds, as the replica's ``embed`` would answer it; None where none could answer.
    Blocks (run it on a thread)."""
    import numpy as np

    from serve_app import standby_answer
    from serve_app.embeddings.jobs import EmbedResult

    if method != "embed":
        return None
    found = standby_answer.ask("embeddings", {"texts": list(job.texts)}, timeout_s)
    if found is None:
        return None
    header, tail = found
    vectors = np.frombuffer(tail, dtype="<f4").reshape(header["shape"])
    if len(vectors) != len(job.texts):
        return None
    return EmbedResult(
        vectors=vectors,
        token_counts=list(header["token_counts"]),
        batch_jobs=1,
        batch_texts=len(job.texts),
        batch_leader=True,
        batch_seconds=float(header["seconds"]),
    )


def outcome() -> str:
    """What the last :func:`take` of this process found: "taken", or why it returned None."""
    return _outcome
