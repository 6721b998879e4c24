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
_outcome = "not asked"  # what the last take() found (/health reports it)


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

    global _preload
    with _lock:
        if _preload is None:
            _preload = _Preload(kwargs, exit_unclaimed_after_s)
            background(_preload.run, "preload-embeddings")


def start_default() -> None:
    """:func:`start` with this process's settings (a standby worker woken by a request,
    serve_app/prestart.py); exits when no replica takes the model in time."""
    start(settings_kwargs(), UNCLAIMED_EXIT_S)


def take(kwargs: dict[str, Any]) -> Any:
    """The runtime this process preloaded with the same ``kwargs`` (waiting for it to finish
    loading), or None: then the caller loads its own (:func:`outcome` says why)."""
    global _preload, _outcome
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
    if preload.error is not None:
        log.warning("the preloaded embedding model failed (%r); loading again", preload.error)
        _outcome = f"the preload failed: {preload.error!r}"
        return None
    _outcome = "taken"
    return preload.runtime


def outcome() -> str:
    """What the last :func:`take` of this process found: "taken", or why it returned None."""
    return _outcome
