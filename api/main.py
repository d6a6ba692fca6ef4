"""The app factory. Run: ``python -m api`` (settings: ``MAMBA_API_*``, see docs/API.md)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from api.edge import EdgeGuard
from api.errors import install_error_handlers
from api.metrics import ApiMetrics, MetricsMiddleware
from api.routes import health, models, predict
from api.service import PredictionService
from api.settings import Settings

logger = logging.getLogger(__name__)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def create_app(settings: Settings | None = None) -> FastAPI:
    """A configured app; models are found at start-up (lifespan) and loaded on first use."""
    settings = settings or Settings()
    _configure_logging(settings.log_level)
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(app.state.service.scan)
        yield

    app = FastAPI(
        title="Mamba forecast service",
        version="0.1.0",
        summary="Quantile forecasts of log returns from per-symbol Mamba models.",
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    app.state.service = PredictionService(settings, metrics)
    install_error_handlers(app)  # its error guard is the innermost middleware
    app.add_middleware(
        EdgeGuard,
        api_key=settings.api_key,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_s=settings.body_timeout_s,
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)  # outermost: counts refusals too
    for module in (health, models, predict):
        app.include_router(module.router)
    if settings.api_key is None:
        _document_without_api_key(app)
    logger.info("app created (models dir %s, offline=%s)", settings.models_dir, settings.offline)
    return app


def _document_without_api_key(app: FastAPI) -> None:
    """Without a configured key the routes are open: the schema must not ask for one."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = generate()
            schema.get("components", {}).pop("securitySchemes", None)
            for operations in schema["paths"].values():
                for operation in operations.values():
                    operation.pop("security", None)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _configure_logging(level: str) -> None:
    """Give the ``api`` and library loggers a handler (uvicorn configures only its own)."""
    for name in ("api", "ml"):
        named = logging.getLogger(name)
        named.setLevel(level)
        if not named.handlers and not logging.getLogger().handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter(LOG_FORMAT))
            named.addHandler(handler)


app = create_app()
