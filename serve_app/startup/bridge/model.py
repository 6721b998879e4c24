"""The embedding model in the bridge's own process, called as the embeddings deployment is."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from serve_app.embeddings.jobs import EmbedJob, EmbedResult
from serve_app.settings import get_settings
from serve_app.startup.bridge import FAILED, LOADED, SERVED_BY


class LocalEmbeddings:
    """What :class:`EmbeddingService` calls instead of the embeddings deployment: the model in
    this process, one call at a time on one thread (a call uses every core already)."""

    def __init__(self, on_loaded: Any) -> None:
        self.runtime: Any = None
        self.error: BaseException | None = None
        self.loaded = threading.Event()
        self._on_loaded = on_loaded  # called on the loading thread, loaded or failed
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="bridge-embed")
        self._pool.submit(self._load)

    def _load(self) -> None:
        started = time.perf_counter()
        try:
            from serve_app.embeddings.runtime import EmbeddingRuntime

            runtime = EmbeddingRuntime.from_settings(get_settings())
            runtime.embed(["warm up"])  # the first forward pass is slow
            self.runtime = runtime
            print(f"{LOADED} in {time.perf_counter() - started:.1f} s", flush=True)
        except BaseException as exc:  # reported by /health and every embeddings call
            self.error = exc
            print(f"{FAILED}: {exc!r}; Serve answers embeddings when it is up", flush=True)
        finally:
            self.loaded.set()
            self._on_loaded()

    def _embed(self, job: EmbedJob) -> EmbedResult:
        if self.runtime is None:
            raise RuntimeError(f"the embedding model did not load: {self.error!r}")
        return self.runtime.embed_jobs([job])[0]

    async def call(self, method: str, job: Any) -> Any:
        assert method == "embed", method
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._embed, job)

    def info(self) -> dict[str, Any]:
        if not self.loaded.is_set():
            return {"status": "starting", "reason": "loading the model", "served_by": SERVED_BY}
        if self.runtime is None:
            return {"status": "starting", "reason": repr(self.error)[:200], "served_by": SERVED_BY}
        return {**self.runtime.info(get_settings().embeddings_model_name), "served_by": SERVED_BY}
