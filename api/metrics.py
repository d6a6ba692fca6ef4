"""Prometheus metrics: one registry per app, and an ASGI middleware timing each request.

Requests are labelled by route template (``/predict/{symbol}``), never the raw path, so
the series count stays bounded however many symbols (or garbage paths) are requested.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
UNMATCHED_ROUTE = "<unmatched>"


class ApiMetrics:
    """The service's metric families, registered in their own :class:`CollectorRegistry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "mamba_api_requests",
            "HTTP requests by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "mamba_api_request_duration_seconds",
            "HTTP request latency by method and route template.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.model_loads = Counter(
            "mamba_api_model_loads",
            "Model versions loaded from disk, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.model_load_seconds = Histogram(
            "mamba_api_model_load_seconds",
            "Time to read, verify, deserialise and trace one model.",
            buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
            registry=self.registry,
        )
        self.cache = Counter(
            "mamba_api_cache_lookups",
            "Cache lookups by cache (model, history, forecast) and result (hit, miss).",
            ["cache", "result"],
            registry=self.registry,
        )
        self.models_loaded = Gauge(
            "mamba_api_models_loaded", "Models currently held in memory.", registry=self.registry
        )

    def cache_lookup(self, cache: str, hit: bool) -> None:
        self.cache.labels(cache, "hit" if hit else "miss").inc()


def route_template(scope: Scope) -> str:
    """The matched route's path template (``{symbol}``, not ``AAPL``), or a fixed label."""
    route = scope.get("route")
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return template or UNMATCHED_ROUTE


class MetricsMiddleware:
    """Pure ASGI middleware (no per-request task or body buffering) recording count + latency."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client sees if the app dies before answering

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route, method = route_template(scope), scope["method"]
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - started)
