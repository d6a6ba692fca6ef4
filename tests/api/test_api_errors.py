"""Every error a client can cause: JSON body, right status, and a message that helps."""

from __future__ import annotations

import json

import anyio
import pytest
from fastapi.testclient import TestClient
from starlette.types import ASGIApp

from api.errors import ERROR_TABLE
from ml.state_space.registry import ModelRegistry

TRAVERSALS = [  # as sent on the wire (httpx would resolve literal "..", see the raw test)
    "%2e%2e",
    "..%2F..%2Fetc%2Fpasswd",
    "%2E%2E%2F%2E%2E%2Fsecret",
    "..%5C..%5Cwindows",
    "%252e%252e%252fetc",
    "AAPL%2F..%2F..%2Fweights",
    ".hidden",
    "AAPL%00",
    "a%20b",
    "A" * 16,
    "%C3%A4",
]


@pytest.mark.parametrize("raw", TRAVERSALS)
@pytest.mark.parametrize("route", ["/predict/", "/models/"])
def test_malformed_and_traversal_symbols_are_422(client: TestClient, route: str, raw: str) -> None:
    response = client.get(route + raw)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "invalid_symbol"
    assert "invalid symbol" in body["message"]


@pytest.mark.parametrize("path", ["/predict/../../etc/passwd", "/models/..", "/predict/./x"])
def test_literal_dot_segments_reach_the_validator_and_are_422(
    client: TestClient, path: str
) -> None:
    """What `curl --path-as-is` sends: uvicorn passes dot segments through unresolved."""
    status, body = anyio.run(raw_get, client.app, path)
    assert status == 422
    assert body["error"] == "invalid_symbol"


async def raw_get(app: ASGIApp, path: str) -> tuple[int, dict]:
    """GET ``path`` exactly as given (HTTP clients normalise dot segments away)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    await app(scope, receive, send)
    body = b"".join(message.get("body", b"") for message in sent[1:])
    return sent[0]["status"], json.loads(body)


def test_traversal_in_post_is_422(client: TestClient) -> None:
    rows = [{"date": "2020-01-01", "close": 1.0}, {"date": "2020-01-02", "close": 1.1}]
    response = client.post("/predict/..%2F..%2Fetc", json={"prices": rows})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_symbol"


def test_unknown_model_is_404_and_says_how_to_train(client: TestClient) -> None:
    response = client.get("/predict/MSFT")
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "model_not_found"
    assert "train_mamba_models.py --symbols MSFT" in body["message"]


def test_no_price_data_is_503_and_says_what_was_tried(
    client: TestClient, registry: ModelRegistry
) -> None:
    # a model for a symbol that is neither bundled nor cached, served offline
    registry.save(
        "ZZZZ",
        registry.weights_path("AAPL").read_bytes(),
        {**registry.load_metadata("AAPL"), "symbol": "ZZZZ"},
        registry.load_metrics("AAPL"),
    )
    response = client.get("/predict/ZZZZ")
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "data_unavailable"
    assert "cache" in body["message"] and "offline" in body["message"]


def test_weights_that_do_not_match_their_metadata_are_503(
    client: TestClient, registry: ModelRegistry
) -> None:
    registry.weights_path("AAPL").write_bytes(b"half-written weights")
    response = client.get("/predict/AAPL")
    assert response.status_code == 503
    assert response.json()["error"] == "artifact_mismatch"
    assert "rollback AAPL" in response.json()["message"]


def test_unreadable_metadata_is_503_naming_the_file_and_the_model_is_listed_as_broken(
    client: TestClient, registry: ModelRegistry
) -> None:
    registry.metadata_path("AAPL").write_text("{not json")
    for path in ("/predict/AAPL", "/models/AAPL"):
        response = client.get(path)
        assert response.status_code == 503, path
        assert response.json()["error"] == "artifact_corrupt"
        assert str(registry.metadata_path("AAPL")) in response.json()["message"]
        assert "train_mamba_models.py --symbols AAPL" in response.json()["message"]
    listing = client.get("/models").json()
    assert [m["symbol"] for m in listing["models"]] == ["^GSPC"]
    assert [b["symbol"] for b in listing["broken"]] == ["AAPL"]
    assert client.get("/predict/%5EGSPC").status_code == 200  # the others still serve


def test_an_unreadable_metrics_file_only_nulls_the_skill(
    client: TestClient, registry: ModelRegistry
) -> None:
    registry.metrics_path("AAPL").write_bytes(b"\xff\xfe garbage")
    response = client.get("/predict/AAPL")
    assert response.status_code == 200
    assert all(h["test_skill_vs_random_walk"] is None for h in response.json()["horizons"])
    assert client.get("/models/AAPL").json()["metrics"] == {}


def test_garbage_weights_with_a_matching_hash_are_503(
    client: TestClient, registry: ModelRegistry
) -> None:
    garbage = b"PK\x03\x04 not a keras archive"
    metadata = registry.load_metadata("AAPL")
    registry.save("AAPL", garbage, metadata, registry.load_metrics("AAPL"))
    response = client.get("/predict/AAPL")
    assert response.status_code == 503
    assert response.json()["error"] == "artifact_corrupt"
    assert str(registry.weights_path("AAPL")) in response.json()["message"]
    assert "rollback AAPL" in response.json()["message"]


@pytest.mark.parametrize(("exc_type", "status", "code"), ERROR_TABLE)
def test_library_errors_map_to_status_codes(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, exc_type, status: int, code: str
) -> None:
    def fail(symbol: str) -> None:
        raise exc_type(f"{symbol}: simulated")

    monkeypatch.setattr(client.app.state.service, "forecast", fail)
    response = client.get("/predict/AAPL")
    assert (response.status_code, response.json()) == (
        status,
        {"error": code, "message": "AAPL: simulated"},
    )


def test_unexpected_errors_are_500_without_internals(
    make_app, monkeypatch: pytest.MonkeyPatch
) -> None:
    # raise_server_exceptions (the default): the error must end in the app, not reach the
    # server, which would drop the keep-alive connection for the client's next request
    with TestClient(make_app()) as client:

        def crash(symbol: str) -> None:
            raise KeyError("secret internal detail")

        monkeypatch.setattr(client.app.state.service, "forecast", crash)
        response = client.get("/predict/AAPL")
        assert response.status_code == 500
        assert response.json()["error"] == "internal_error"
        assert "secret" not in response.text
        assert client.get("/health").status_code == 200


GOOD = [{"date": "2020-01-02", "close": 10.0}, {"date": "2020-01-03", "close": 10.5}]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"prices": [GOOD[1], GOOD[0]]}, "strictly increasing"),
        ({"prices": [GOOD[0], GOOD[0]]}, "strictly increasing"),
        ({"prices": [GOOD[0], {**GOOD[1], "close": -1}]}, "greater than 0"),
        ({"prices": [GOOD[0], {**GOOD[1], "close": 0}]}, "greater than 0"),
        ({"prices": [GOOD[0], {**GOOD[1], "volume": -5}]}, "volume"),
        ({"prices": [GOOD[0], {**GOOD[1], "open": 10.2}]}, "every row or on none"),
        ({"prices": [GOOD[0], {"date": "2020-01-03"}]}, "close"),
        ({"prices": [GOOD[0], {**GOOD[1], "date": "yesterday"}]}, "date"),
        ({"prices": [GOOD[0], {**GOOD[1], "date": "9999-12-31"}]}, "date must be between"),
        ({"prices": [{**GOOD[0], "date": "1066-10-14"}, GOOD[1]]}, "date must be between"),
        ({"prices": [GOOD[0], {**GOOD[1], "price": 3}]}, "price"),
        ({"prices": [GOOD[0]]}, "at least 2"),
        ({"rows": GOOD}, "prices"),
        ([1, 2, 3], "object"),
    ],
)
def test_bad_post_bodies_are_422_with_a_clear_message(
    client: TestClient, body: object, fragment: str
) -> None:
    response = client.post("/predict/AAPL", json=body)
    assert response.status_code == 422, response.text
    payload = response.json()
    assert payload["error"] == "validation_error"
    assert fragment in payload["message"] + str(payload["details"])


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_prices_are_422(client: TestClient, literal: str) -> None:
    raw = '{"prices": [{"date": "2020-01-02", "close": 1.0}, {"date": "2020-01-03", "close": %s}]}'
    response = client.post(
        "/predict/AAPL", content=raw % literal, headers={"content-type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"


def test_malformed_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/predict/AAPL", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"


def test_unknown_route_is_json_404(client: TestClient) -> None:
    response = client.get("/nope")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("OPTIONS", "/predict/AAPL", "GET, POST"),
        ("DELETE", "/predict", "POST"),
        ("PUT", "/models", "GET"),
    ],
)
def test_a_wrong_method_is_405_naming_every_allowed_one(
    client: TestClient, method: str, path: str, allowed: str
) -> None:
    response = client.request(method, path)
    assert response.status_code == 405
    assert response.headers["allow"] == allowed
    assert response.json()["error"] == "method_not_allowed"
    assert allowed.replace(", ", " or ") in response.json()["message"]
