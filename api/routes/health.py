"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import ApiKey, ServiceDep
from api.errors import ERROR_RESPONSES
from api.schemas import ErrorResponse, Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/health", response_model=Health)
async def health() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@router.get("/ready", response_model=Readiness, responses={503: {"model": ErrorResponse}})
def ready(service: ServiceDep) -> Readiness:
    """Readiness: 503 until the start-up scan of the model directory has run."""
    if not service.ready:
        raise HTTPException(503, "not ready: the model directory has not been scanned yet")
    return Readiness(status="ready", models=len(service.registry.symbols()))


@router.get(
    "/metrics",
    dependencies=[ApiKey],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}, 401: ERROR_RESPONSES[401]},
)
async def metrics(request: Request) -> Response:
    """Prometheus exposition: request counts/latency per route, model loads, cache hits."""
    payload = generate_latest(request.app.state.metrics.registry)
    return Response(payload, media_type=CONTENT_TYPE_LATEST)
