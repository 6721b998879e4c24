"""The HTTP ingress: one FastAPI app in a Serve deployment in front of the model deployments."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from ray import serve
from ray.exceptions import RayError
from ray.serve.exceptions import RayServeException
from ray.serve.handle import DeploymentHandle
from starlette.responses import Response

from serve_app.deployment_client import DeploymentClient
from serve_app.embeddings.model_files import ModelExport, served_export
from serve_app.embeddings.routes import router as embeddings_router
from serve_app.embeddings.serving import EmbeddingService
from serve_app.http_app import create_http_app
from serve_app.http_errors import ERROR_RESPONSES
from serve_app.logs import get_logger, init_sentry
from serve_app.metrics import REGISTRY, REPLICAS
from serve_app.middleware import InflightCounter
from serve_app.ocr.routes import ocr_router
from serve_app.ocr.routes import router as receipts_router
from serve_app.ocr.serving import OcrService
from serve_app.settings import Settings, get_settings
from serve_app.solver.routes import router as plans_router
from serve_app.solver.serving import PlanService
from serve_app.store.db import Store, create_store
from serve_app.store.routes import router as store_router
from serve_app.store.serving import StoreService

log = get_logger(__name__)


class HealthReporter:
    """Per-component readiness from the Serve controller (cached for ``CACHE_S``) and the model
    replicas. A replica's ``info`` is kept for ``INFO_TTL_S`` while its replica count stays the
    same, and concurrent polls share one call: every call is an ongoing request for Serve's
    autoscaler, and frequent polls once scaled the solver to a second replica with no traffic.
    """

    CACHE_S = 1.0
    INFO_TTL_S = 10.0
    INFO_TIMEOUT_S = 5.0

    def __init__(
        self,
        app_name: str,
        clients: dict[str, DeploymentClient],
        services: dict[str, Callable[[], Awaitable[dict[str, Any]]]] | None = None,
    ):
        self.app_name = app_name
        self.clients = clients
        self.services = services or {}  # components that are not deployments (the store)
        self._status: Any = None
        self._status_at = 0.0
        self._lock = asyncio.Lock()
        # per model: (running replicas, when asked, info); and the call in flight
        self._info: dict[str, tuple[int, float, dict[str, Any]]] = {}
        self._info_calls: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def deployments(self) -> dict[str, Any]:
        async with self._lock:
            if self._status is None or time.monotonic() - self._status_at > self.CACHE_S:
                self._status = await asyncio.to_thread(serve.status)
                self._status_at = time.monotonic()
            app = self._status.applications.get(self.app_name)
        return dict(app.deployments) if app else {}

    async def components(self) -> dict[str, dict[str, Any]]:
        """Each model's and service's state, for ``/health`` (:func:`health_answer`)."""
        deployments = await self.deployments()
        components = {
            name: await self._component(client, deployments.get(name))
            for name, client in self.clients.items()
        }
        for name, check in self.services.items():
            components[name] = await check()
        return components

    async def _component(self, client: DeploymentClient, deployment: Any) -> dict[str, Any]:
        if deployment is None:
            return {"status": "starting", "reason": "deployment not created yet"}
        running = sum(n for s, n in deployment.replica_states.items() if _state(s) == "RUNNING")
        state = _state(deployment.status)
        if running == 0:
            self._info.pop(client.name, None)
            if state in ("HEALTHY", "UPSCALING", "DOWNSCALING"):
                return {"status": "scaled_to_zero", "replicas": 0}
            return {"status": "starting", "reason": deployment.message or state.lower()}
        try:
            info = await self._model_info(client, running)
        except (TimeoutError, RayError, RayServeException) as exc:
            # A replica that cannot answer is not ready; the reason goes into /health.
            return {"status": "starting", "reason": f"{type(exc).__name__}: {exc}"[:200]}
        return {**info, "replicas": running}

    async def _model_info(self, client: DeploymentClient, running: int) -> dict[str, Any]:
        """A model replica's ``info``: cached while fresh, one call for concurrent polls."""
        cached = self._info.get(client.name)
        if cached and cached[0] == running and time.monotonic() - cached[1] < self.INFO_TTL_S:
            return cached[2]
        call = self._info_calls.get(client.name)
        if call is None:
            call = asyncio.ensure_future(self._ask_info(client, running))
            call.add_done_callback(lambda done: done.cancelled() or done.exception())
            self._info_calls[client.name] = call
        # A poll that gives up (its client went away) must not cancel the shared call.
        return await asyncio.shield(call)

    async def _ask_info(self, client: DeploymentClient, running: int) -> dict[str, Any]:
        try:
            info = await asyncio.wait_for(client.handle.info.remote(), self.INFO_TIMEOUT_S)
        finally:
            self._info_calls.pop(client.name, None)
        self._info[client.name] = (running, time.monotonic(), info)
        return info

    async def refresh_replica_gauges(self) -> None:
        for name, deployment in (await self.deployments()).items():
            for state, count in deployment.replica_states.items():
                REPLICAS.labels(name, _state(state)).set(count)


def _state(state: Any) -> str:  # an enum's value, or the string
    return str(getattr(state, "value", state))


def create_api(
    settings: Settings,
    clients: dict[str, DeploymentClient],
    app_name: str,
    inflight: InflightCounter | None = None,
    model: ModelExport | None = None,
    store: Store | None = None,
) -> FastAPI:
    """The FastAPI app: routes of the enabled models, health, metrics, errors."""
    services = {"store": store.status} if store is not None else {}
    health = HealthReporter(app_name, clients, services)
    app = create_http_app(settings, health.components, inflight=inflight)

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def metrics() -> Response:
        try:
            # A busy controller must not stall scrapes: keep the last replica counts then.
            await asyncio.wait_for(health.refresh_replica_gauges(), 2.0)
        except (TimeoutError, RayError, RayServeException) as exc:
            log.warning("replica gauges not refreshed (last values kept): %r", exc)
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    app.include_router(receipts_router, responses=ERROR_RESPONSES)  # pure Python, no model
    if "ocr" in clients:
        app.state.ocr = OcrService(clients["ocr"], settings)
        app.include_router(ocr_router, responses=ERROR_RESPONSES)
    if "solver" in clients:
        app.state.plans = PlanService(clients["solver"], settings)
        app.include_router(plans_router, responses=ERROR_RESPONSES)
    if model is not None:  # the embeddings deployment is bound
        app.state.embeddings = EmbeddingService(clients["embeddings"], settings, model)
        app.include_router(embeddings_router, responses=ERROR_RESPONSES)
        if store is not None:
            app.state.store = StoreService(store, app.state.embeddings, settings)
            app.include_router(store_router, responses=ERROR_RESPONSES)
    return app


@serve.deployment(name="ingress")
@serve.ingress()
class Ingress:
    """The only HTTP entry point; holds handles to the model deployments."""

    def __init__(
        self,
        embeddings: DeploymentHandle | None = None,
        ocr: DeploymentHandle | None = None,
        solver: DeploymentHandle | None = None,
        store: bool = True,
    ) -> None:
        self.settings = get_settings()
        logging.basicConfig(level=self.settings.log_level)
        init_sentry(self.settings, "ingress")
        handles = {"embeddings": embeddings, "ocr": ocr, "solver": solver}
        self.inflight = InflightCounter()
        # A solve may use its whole time limit: the solver's call waits that long and more.
        solver_timeout_s = max(
            self.settings.request_timeout_s, self.settings.plans_max_timeout_ms / 1000 + 10
        )
        self.clients = {
            name: DeploymentClient(
                name,
                handle,
                solver_timeout_s if name == "solver" else self.settings.request_timeout_s,
                self.settings.retry_after_s,
            )
            for name, handle in handles.items()
            if handle is not None
        }
        # The model's dimension and token limit, from its export (`serve-app run` made it)
        self.model = served_export(self.settings, log.info) if embeddings is not None else None
        # One connection pool per ingress replica; created on first use.
        self.store = (
            create_store(self.settings, self.model.dimensions)
            if store and self.model is not None
            else None
        )

    def __serve_build_asgi_app__(self) -> FastAPI:
        app_name = serve.get_replica_context().app_name
        return create_api(
            self.settings, self.clients, app_name, self.inflight, self.model, store=self.store
        )

    def drain(self) -> int:
        """Start draining (``/health`` answers 503); returns the requests still in flight."""
        self.inflight.draining = True
        return self.inflight.value
