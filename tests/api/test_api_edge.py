"""The HTTP edge: oversized bodies and unauthenticated bodies are refused before reading."""

from __future__ import annotations

import asyncio
import json

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from api.edge import EdgeGuard

LIMIT = 2048


def _rows(n: int) -> dict:
    return {"prices": [{"date": f"2020-01-{1 + i % 28:02d}", "close": 10.0} for i in range(n)]}


def _call(guard_args: tuple, scope: dict) -> tuple[list, list]:
    """Run an :class:`EdgeGuard` over a fake app whose body must never be read:
    ``(scopes that reached the app, messages sent back)``."""
    reached, messages = [], []

    async def app(scope, receive, send):
        reached.append(scope)

    async def send(message):
        messages.append(message)

    async def receive():
        raise AssertionError("the body must not be read")

    asyncio.run(EdgeGuard(app, *guard_args)(scope, receive, send))
    return reached, messages


def test_a_body_over_the_limit_is_413_with_a_clear_message(make_app):
    body = json.dumps(_rows(200)).encode()
    assert len(body) > LIMIT
    with TestClient(make_app(max_body_bytes=LIMIT)) as client:
        response = client.post(
            "/predict/AAPL", content=body, headers={"content-type": "application/json"}
        )
        health = client.get("/health")
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"
    assert "MAMBA_API_MAX_BODY_BYTES" in response.json()["message"]
    assert health.status_code == 200


def test_a_chunked_body_is_read_only_up_to_the_limit(make_app):
    def chunks():
        for _ in range(1000):  # 1000 x 1 KiB without a Content-Length, far over the limit
            yield b" " * 1024

    with TestClient(make_app(max_body_bytes=LIMIT)) as client:
        response = client.post(
            "/predict/AAPL", content=chunks(), headers={"content-type": "application/json"}
        )
    assert response.status_code == 413
    assert response.json()["error"] == "body_too_large"


def test_a_chunked_body_under_the_limit_reaches_the_route(make_app):
    body = json.dumps({"symbols": ["AAPL"]}).encode()
    with TestClient(make_app(max_body_bytes=LIMIT)) as client:
        response = client.post(
            "/predict",
            content=iter([body[:5], body[5:]]),
            headers={"content-type": "application/json"},
        )
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["symbol"] == "AAPL"


@pytest.mark.parametrize("length", ["-1", "12abc", str(10**12)])
def test_a_bad_or_huge_content_length_is_413(length):
    headers = [(b"content-length", length.encode())]
    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": headers}
    reached, messages = _call((None, LIMIT), scope)
    assert not reached and messages[0]["status"] == 413


def test_without_the_api_key_a_body_is_refused_unread(api_key):
    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": []}
    reached, messages = _call((SecretStr(api_key), LIMIT), scope)
    assert not reached and messages[0]["status"] == 401
    assert json.loads(messages[1]["body"])["error"] == "unauthorized"


def test_with_the_api_key_a_body_is_served(make_app, api_key):
    with TestClient(make_app(api_key=api_key)) as client:
        refused = client.post("/predict", json={"symbols": ["AAPL"]})
        allowed = client.post(
            "/predict", json={"symbols": ["AAPL"]}, headers={"X-API-Key": api_key}
        )
    assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
    assert allowed.status_code == 200


def test_a_body_that_stalls_is_408_and_never_reaches_the_app():
    reached, messages = [], []

    async def app(scope, receive, send):
        reached.append(scope)

    async def send(message):
        messages.append(message)

    chunks = [{"type": "http.request", "body": b'{"symbols": [', "more_body": True}]

    async def receive():
        if chunks:
            return chunks.pop()
        await asyncio.sleep(3600)  # a client that stopped sending

    guard = EdgeGuard(app, None, LIMIT, body_timeout_s=0.05)
    scope = {"type": "http", "method": "POST", "path": "/predict", "headers": []}
    asyncio.run(guard(scope, receive, send))
    assert not reached and messages[0]["status"] == 408
    assert json.loads(messages[1]["body"])["error"] == "body_timeout"
