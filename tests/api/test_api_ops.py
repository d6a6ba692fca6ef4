"""Liveness, readiness, API key, Prometheus metrics, settings validation."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from api.settings import Settings


def test_health_is_always_up(make_app) -> None:
    assert TestClient(make_app()).get("/health").json() == {"status": "ok"}


def test_ready_is_503_until_the_models_dir_is_scanned(make_app) -> None:
    app = make_app()
    not_started = TestClient(app).get("/ready")  # no `with`: lifespan has not run
    assert not_started.status_code == 503
    assert not_started.json()["error"] == "not_ready"
    with TestClient(app) as client:
        assert client.get("/ready").json() == {"status": "ready", "models": 2}


def test_models_load_on_first_use_not_at_start_up(make_app) -> None:
    app = make_app()
    with TestClient(app) as client:
        assert len(app.state.service.models) == 0
        client.get("/predict/AAPL")
        assert len(app.state.service.models) == 1


@pytest.mark.parametrize("path", ["/predict/AAPL", "/models", "/models/AAPL", "/metrics"])
def test_api_key_guards_every_route_but_health_and_ready(make_app, api_key: str, path: str) -> None:
    with TestClient(make_app(api_key=api_key)) as client:
        assert client.get("/health").status_code == 200
        assert client.get("/ready").status_code == 200
        missing = client.get(path)
        assert missing.status_code == 401
        assert missing.json()["error"] == "unauthorized"
        assert client.get(path, headers={"X-API-Key": api_key[:-1] + "x"}).status_code == 401
        assert client.get(path, headers={"X-API-Key": api_key}).status_code == 200


def test_api_key_guards_post_routes(make_app, api_key: str) -> None:
    with TestClient(make_app(api_key=api_key)) as client:
        assert client.post("/predict", json={"symbols": ["AAPL"]}).status_code == 401
        ok = client.post("/predict", json={"symbols": ["AAPL"]}, headers={"X-API-Key": api_key})
        assert ok.status_code == 200


def test_metrics_count_requests_per_route_template(client: TestClient) -> None:
    client.get("/predict/AAPL")
    client.get("/predict/AAPL")
    client.get("/predict/MSFT")
    client.get("/predict/..%2Fx")
    client.get("/no/such/route")
    text = client.get("/metrics").text
    route = 'route="/predict/{symbol}"'
    assert f'mamba_api_requests_total{{method="GET",{route},status="200"}} 2.0' in text
    assert f'mamba_api_requests_total{{method="GET",{route},status="404"}} 1.0' in text
    assert f'mamba_api_requests_total{{method="GET",{route},status="422"}} 1.0' in text
    assert 'route="<unmatched>"' in text
    assert "AAPL" not in text and "MSFT" not in text, "no raw paths in labels"
    assert f'mamba_api_request_duration_seconds_count{{method="GET",{route}}} 4.0' in text
    assert 'mamba_api_model_loads_total{outcome="ok"} 1.0' in text
    assert 'mamba_api_cache_lookups_total{cache="model",result="hit"} 1.0' in text
    assert 'mamba_api_cache_lookups_total{cache="history",result="hit"} 1.0' in text
    assert 'mamba_api_cache_lookups_total{cache="forecast",result="hit"} 1.0' in text
    assert "mamba_api_models_loaded 1.0" in text


@pytest.mark.parametrize(
    "bad",
    [
        {"api_key": "short"},
        {"model_cache_size": 0},
        {"history_ttl_s": -1},
        {"max_batch": 1000},
    ],
)
def test_invalid_settings_fail_at_start_up(bad: dict) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)


def test_a_rejected_api_key_is_not_echoed() -> None:
    with pytest.raises(ValidationError) as rejected:
        Settings(api_key="tooshort-secret")
    assert "tooshort-secret" not in str(rejected.value)
    assert "at least 16 characters" in str(rejected.value)


def test_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path, api_key: str
) -> None:
    monkeypatch.setenv("MAMBA_API_MODELS_DIR", str(tmp_path))
    monkeypatch.setenv("MAMBA_API_OFFLINE", "true")
    monkeypatch.setenv("MAMBA_API_API_KEY", api_key)
    monkeypatch.setenv("MAMBA_API_HISTORY_TTL_S", "5")
    settings = Settings()
    assert (settings.models_dir, settings.offline, settings.history_ttl_s) == (tmp_path, True, 5)
    assert settings.api_key.get_secret_value() == api_key
    assert api_key not in repr(settings)
    monkeypatch.setenv("MAMBA_API_API_KEY", "")
    assert Settings().api_key is None
    (tmp_path / "file").write_text("x")
    monkeypatch.setenv("MAMBA_API_MODELS_DIR", str(tmp_path / "file"))
    with pytest.raises(ValidationError, match="not a directory"):
        Settings()


def test_the_schema_asks_for_an_api_key_only_when_one_is_configured(make_app, api_key):
    with TestClient(make_app()) as client:
        open_schema = client.get("/openapi.json").json()
    with TestClient(make_app(api_key=api_key)) as client:
        guarded = client.get("/openapi.json").json()
    assert "securitySchemes" not in open_schema.get("components", {})
    assert all("security" not in op for ops in open_schema["paths"].values() for op in ops.values())
    assert "APIKeyHeader" in guarded["components"]["securitySchemes"]
    assert "security" in guarded["paths"]["/predict/{symbol}"]["get"]


def test_the_schema_declares_every_error_status_a_route_can_answer(make_app):
    with TestClient(make_app()) as client:
        paths = client.get("/openapi.json").json()["paths"]
    post, get = paths["/predict/{symbol}"]["post"], paths["/predict/{symbol}"]["get"]
    assert {"404", "408", "413", "422", "500", "503"} <= set(post["responses"])
    assert {"404", "422", "500", "503"} <= set(get["responses"])
    assert "408" not in get["responses"]  # no body, no body timeout
