"""Library exceptions -> HTTP status + JSON ``{"error", "message", "details"}``.

One table drives both the exception handlers and the per-symbol errors of a batch,
so a symbol fails the same way alone or in a batch.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.schemas import ErrorResponse
from ml.state_space.data.calendar import CalendarRangeError
from ml.state_space.data.quality import DataQualityError
from ml.state_space.data.sources import DataUnavailableError
from ml.state_space.data.symbols import InvalidSymbolError
from ml.state_space.models.card import CardSchemaError
from ml.state_space.models.servable import InsufficientHistoryError
from ml.state_space.registry import (
    ArtifactMismatchError,
    CorruptArtifactError,
    ModelNotFoundError,
)

logger = logging.getLogger(__name__)

# Most specific first: InvalidSymbolError, DataQualityError and InsufficientHistoryError
# are all ValueErrors, and a bare ValueError is not in the table (it would be a bug -> 500).
ERROR_TABLE: tuple[tuple[type[Exception], int, str], ...] = (
    (InvalidSymbolError, 422, "invalid_symbol"),
    (ModelNotFoundError, 404, "model_not_found"),
    (DataUnavailableError, 503, "data_unavailable"),
    (InsufficientHistoryError, 422, "insufficient_history"),
    (CalendarRangeError, 422, "outside_calendar"),
    (DataQualityError, 422, "data_quality"),
    (ArtifactMismatchError, 503, "artifact_mismatch"),
    (CorruptArtifactError, 503, "artifact_corrupt"),
    (CardSchemaError, 503, "artifact_corrupt"),
)
HTTP_CODES = {
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    422: "validation_error",
    503: "not_ready",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **{status: {"model": ErrorResponse} for status in (401, 404, 422, 503)},
    500: {"model": ErrorResponse, "description": "internal_error: a bug, logged with its trace"},
}
BODY_RESPONSES: dict[int | str, dict[str, Any]] = {
    408: {"model": ErrorResponse, "description": "body stalled over MAMBA_API_BODY_TIMEOUT_S"},
    413: {"model": ErrorResponse, "description": "body over MAMBA_API_MAX_BODY_BYTES"},
}


HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
INTERNAL_ERROR = ErrorResponse(error="internal_error", message="internal server error (see log)")
MAX_DETAILS = 20


def classify(error: Exception) -> tuple[int, ErrorResponse]:
    """The status and body for ``error``: the table's, or 500 for anything unexpected."""
    for exc_type, status, code in ERROR_TABLE:
        if isinstance(error, exc_type):
            message = str(error.args[0]) if error.args else str(error)
            return status, ErrorResponse(error=code, message=message)
    logger.error("unexpected %s: %s", type(error).__name__, error, exc_info=error)
    return 500, INTERNAL_ERROR


def error_response(
    status: int, body: ErrorResponse, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)


async def _library_error(request: Request, error: Exception) -> JSONResponse:
    status, body = classify(error)
    logger.info("%s %s -> %d %s", request.method, request.url.path, status, body.error)
    return error_response(status, body)


async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
    details = [
        {
            "loc": [str(part) for part in item["loc"]],
            "msg": item["msg"].removeprefix("Value error, "),
            "type": item["type"],
        }
        for item in error.errors()[:MAX_DETAILS]
    ]
    summary = "; ".join(f"{'.'.join(item['loc'])}: {item['msg']}" for item in details[:5])
    body = ErrorResponse(error="validation_error", message=summary, details=details)
    return error_response(422, body)


async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    code = HTTP_CODES.get(error.status_code, f"http_{error.status_code}")
    headers = getattr(error, "headers", None)
    message = str(error.detail)
    if error.status_code == 405:
        allowed = allowed_methods(request)
        headers = {**(headers or {}), "Allow": ", ".join(allowed)}
        message = (
            f"{request.method} is not allowed on {request.url.path}; use {' or '.join(allowed)}"
        )
    return error_response(error.status_code, ErrorResponse(error=code, message=message), headers)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this path (Starlette names only the first
    matching route's): the router is asked, method by method."""
    routes = request.app.router.routes
    return [
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    ]


class InternalErrorGuard:
    """Answer an unexpected exception with the JSON 500 and end it here.

    An exception handler for ``Exception`` would run in Starlette's outermost
    middleware, which re-raises after answering, and the server then drops the
    keep-alive connection: the client's next request, for any symbol, would fail.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as error:
            if started:  # part of a response is out: nothing valid can follow it
                raise
            logger.error("unhandled error on %s %s", scope["method"], scope["path"], exc_info=error)
            await error_response(500, INTERNAL_ERROR)(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Register every handler on ``app``."""
    for exc_type, _, _ in ERROR_TABLE:
        app.add_exception_handler(exc_type, _library_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(InternalErrorGuard)  # before the other middleware: the innermost
