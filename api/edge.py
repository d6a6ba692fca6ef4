"""The HTTP edge: API key and body size checked before a request body is read.

FastAPI reads and parses a body before it runs any dependency, so an unauthenticated or
oversized body would cost memory and CPU before it could be refused. This pure ASGI
middleware refuses both first for requests that may carry a body: a wrong or missing key
(when one is configured) is a 401 without reading the body; a ``Content-Length`` above the
limit is a 413 at once, and a body without one (chunked) is read only up to the limit.
The body is read here, whole, before the app sees it: a client that stops sending it for
``body_timeout_s`` gets a 408 and frees its connection. Bodyless requests (GET, HEAD, ...)
pass through to the routes' own key check.
"""

from __future__ import annotations

import asyncio
import hmac
import json

from pydantic import SecretStr
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.schemas import ErrorResponse

API_KEY_HEADER = "X-API-Key"
BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def key_matches(expected: SecretStr | None, given: str | None) -> bool:
    """Whether ``given`` is the configured key (constant-time); any key passes if none is."""
    if expected is None:
        return True
    return hmac.compare_digest((given or "").encode(), expected.get_secret_value().encode())


class EdgeGuard:
    """Refuse requests with a wrong API key (401), a body over ``max_body_bytes`` (413)
    or a body that stalls for ``body_timeout_s`` (408) before any of it is parsed."""

    def __init__(
        self,
        app: ASGIApp,
        api_key: SecretStr | None,
        max_body_bytes: int,
        body_timeout_s: float = 10.0,
    ) -> None:
        self.app = app
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in BODYLESS_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if not key_matches(self.api_key, headers.get(API_KEY_HEADER.lower())):
            await _refuse(
                send,
                401,
                "unauthorized",
                f"missing or wrong API key: send it in the {API_KEY_HEADER} header",
                {"www-authenticate": API_KEY_HEADER},
            )
            return
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            await self._too_large(send)
            return
        try:
            body = await self._read_limited(receive)
        except TimeoutError:
            await _refuse(
                send,
                408,
                "body_timeout",
                f"the request body stalled for {self.body_timeout_s:g} s "
                "(MAMBA_API_BODY_TIMEOUT_S): send it at once",
            )
            return
        if body is None:
            await self._too_large(send)
            return
        await self.app(scope, _replay(body), send)

    async def _read_limited(self, receive: Receive) -> list[Message] | None:
        """The body's messages, or ``None`` once it passes the limit; ``TimeoutError`` when
        the client sends nothing for ``body_timeout_s``."""
        messages, size = [], 0
        while True:
            message = await asyncio.wait_for(receive(), self.body_timeout_s)
            messages.append(message)
            if message["type"] != "http.request":
                return messages
            size += len(message.get("body", b""))
            if size > self.max_body_bytes:
                return None
            if not message.get("more_body", False):
                return messages

    async def _too_large(self, send: Send) -> None:
        await _refuse(
            send,
            413,
            "body_too_large",
            f"request body over {self.max_body_bytes} bytes (MAMBA_API_MAX_BODY_BYTES): send "
            "fewer rows",
        )


def _replay(messages: list[Message]) -> Receive:
    pending = list(messages)

    async def receive() -> Message:
        if pending:
            return pending.pop(0)
        return {"type": "http.disconnect"}

    return receive


async def _refuse(
    send: Send, status: int, error: str, message: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps(ErrorResponse(error=error, message=message).model_dump()).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),  # the unread body must not be taken for the next request
        *((k.encode(), v.encode()) for k, v in (headers or {}).items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})
