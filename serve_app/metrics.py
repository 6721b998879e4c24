"""Prometheus metrics of the ingress (one registry per process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()  # *_created series only add noise to scrapes

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter(
    "serve_app_requests_total",
    "HTTP requests by route template, method and status code.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "serve_app_request_duration_seconds",
    "HTTP request latency by route template.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
BATCH_REQUESTS = Histogram(
    "serve_app_batch_requests",
    "Jobs (request parts) per model batch; each batch observed once.",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
    registry=REGISTRY,
)
BATCH_ITEMS = Histogram(
    "serve_app_batch_items",
    "Items (texts, pages) per model batch; each batch observed once.",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
    registry=REGISTRY,
)
BATCH_SECONDS = Histogram(
    "serve_app_batch_seconds",
    "Model time per batch (preprocessing + forward pass), each batch observed once.",
    ["model"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=REGISTRY,
)
QUEUE_DEPTH = Gauge(
    "serve_app_model_inflight",
    "Calls from this ingress to a model deployment that have not returned (queued or running).",
    ["model"],
    registry=REGISTRY,
)
SHED = Counter(
    "serve_app_shed_total",
    "Requests answered 503 because the model's queue was too long (load shedding).",
    ["model"],
    registry=REGISTRY,
)
HTTP_INFLIGHT = Gauge(
    "serve_app_http_inflight",
    "API requests (/v1/...) inside this ingress replica now, waiting or running; the load "
    "signal of `serve-app fly autoscale`.",
    registry=REGISTRY,
)
REPLICAS = Gauge(
    "serve_app_replicas",
    "Replicas per deployment and state, from the Serve controller.",
    ["deployment", "state"],
    registry=REGISTRY,
)
