"""The header-read timeout of ``python -m api``, on a real uvicorn server and sockets."""

import asyncio
import socket
import threading
import time

import pytest
import uvicorn

from api.server import main, parse_args, with_header_timeout

HEADER_TIMEOUT_S = 0.5


async def hello(scope, receive, send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(HEADER_TIMEOUT_S * 3)
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture
def port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        free = probe.getsockname()[1]
    config = uvicorn.Config(
        hello,
        host="127.0.0.1",
        port=free,
        http=with_header_timeout(HEADER_TIMEOUT_S),
        timeout_keep_alive=30,  # longer than the header timeout: that one must act
        log_level="warning",
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield free
    server.should_exit = True
    thread.join(5)


def _response(connection: socket.socket) -> bytes:
    connection.settimeout(5)
    reply = b""
    while not reply.endswith(b"\r\n\r\nok"):
        reply += connection.recv(4096)
    return reply


def _closed_within(connection: socket.socket, seconds: float) -> bool:
    """Whether the server closes ``connection`` within ``seconds`` (reading any reply)."""
    connection.settimeout(seconds)
    try:
        while connection.recv(4096):
            pass
    except TimeoutError:
        return False
    return True


def test_a_request_whose_headers_never_finish_is_closed(port):
    started = time.monotonic()  # the server's deadline runs from the connection
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # no blank line: never finished
        assert _closed_within(connection, 5)
        assert HEADER_TIMEOUT_S <= time.monotonic() - started < 3


def test_a_connection_that_sends_nothing_is_closed(port):
    with socket.create_connection(("127.0.0.1", port)) as connection:
        assert _closed_within(connection, 5)


def test_prompt_requests_are_served_and_the_connection_kept_alive(port):
    with socket.create_connection(("127.0.0.1", port)) as connection:
        for _ in range(2):
            connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _response(connection).startswith(b"HTTP/1.1 200")
            time.sleep(HEADER_TIMEOUT_S / 2)
        # the next request's headers must also arrive in time, counted from the response
        connection.sendall(b"GET / HTTP/1.1\r\n")
        assert _closed_within(connection, 5)


def test_a_slow_response_is_not_cut_off_once_the_headers_are_in(port):
    with socket.create_connection(("127.0.0.1", port)) as connection:
        connection.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _response(connection).startswith(b"HTTP/1.1 200")


def test_the_launcher_sets_the_timeout_on_the_protocol_class():
    assert with_header_timeout(2.5).header_timeout_s == 2.5
    assert parse_args(["--port", "9"]).port == 9


def test_a_bad_setting_stops_start_up_with_a_message(monkeypatch):
    monkeypatch.setenv("MAMBA_API_HEADER_TIMEOUT_S", "-1")
    with pytest.raises(SystemExit, match="header_timeout_s") as stopped:
        main(["--port", "9"])
    assert "Traceback" not in str(stopped.value)
