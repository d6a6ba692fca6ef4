"""Run the service under uvicorn with a header-read timeout: ``python -m api``.

uvicorn times out idle keep-alive connections, but a client that opens a connection and
sends its request line and headers slowly (or never finishes them) holds it forever: a
thousand such clients hold a thousand sockets. :class:`HeaderTimeoutProtocol` closes a
connection whose headers have not all arrived ``header_timeout_s`` after it opened or
after the previous response ended. Bodies are bounded by :mod:`api.edge`.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence

import uvicorn
from pydantic import ValidationError
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.settings import Settings
from ml.state_space.data.prices_file import PricesFileError, read_prices_file


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose headers arrive too slowly."""

    header_timeout_s: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._await_headers()

    def on_headers_complete(self) -> None:
        self._stop_waiting()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        next_request_parsed = bool(self.pipeline)
        super().on_response_complete()
        if not (next_request_parsed or self.transport.is_closing()):
            self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    def _await_headers(self) -> None:
        self._stop_waiting()
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_late)

    def _stop_waiting(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_late(self) -> None:
        self.logger.info(
            "closing a connection whose request headers took over %gs", self.header_timeout_s
        )
        if not self.transport.is_closing():
            self.transport.close()


def with_header_timeout(seconds: float) -> type[HeaderTimeoutProtocol]:
    """The protocol class with its timeout set (uvicorn instantiates it per connection)."""
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": seconds})


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m api",
        description="Serve forecasts (settings: MAMBA_API_* environment variables, docs/API.md).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--timeout-keep-alive", type=float, default=5.0, help="seconds an idle connection stays"
    )
    parser.add_argument(
        "--limit-concurrency", type=int, default=None, help="open connections before 503s"
    )
    parser.add_argument("--no-access-log", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Validate the settings, then serve ``api.main:app`` until stopped."""
    args = parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as error:  # a bad MAMBA_API_* value: say which, no traceback
        raise SystemExit(f"invalid MAMBA_API_* setting: {error}") from None
    if settings.prices_file is not None:
        try:  # the service reads it again at start-up; a bad file should not get that far
            read_prices_file(settings.prices_file)
        except PricesFileError as error:
            raise SystemExit(f"invalid MAMBA_API_PRICES_FILE: {error}") from None
    uvicorn.run(
        "api.main:app",
        host=args.host,
        port=args.port,
        http=with_header_timeout(settings.header_timeout_s),
        timeout_keep_alive=args.timeout_keep_alive,
        limit_concurrency=args.limit_concurrency,
        access_log=not args.no_access_log,
    )
