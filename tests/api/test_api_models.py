"""GET /models and GET /models/{symbol}."""

from __future__ import annotations

from fastapi.testclient import TestClient

from ml.state_space.registry import ModelRegistry


def test_models_lists_every_trained_symbol(client: TestClient, registry: ModelRegistry) -> None:
    response = client.get("/models")
    assert response.status_code == 200
    models = response.json()["models"]
    assert [m["symbol"] for m in models] == ["AAPL", "^GSPC"]
    aapl = models[0]
    metadata = registry.load_metadata("AAPL")
    assert aapl["version"] == metadata["version"]
    assert aapl["data"] == {
        "source": "bundled",
        "first_date": metadata["data"]["first_date"],
        "last_date": metadata["data"]["last_date"],
        "rows": metadata["data"]["rows"],
    }


def test_model_detail_has_metadata_and_test_metrics_but_not_the_forecast_table(
    client: TestClient,
) -> None:
    response = client.get("/models/%5Egspc")
    assert response.status_code == 200
    body = response.json()
    assert body["symbol"] == "^GSPC"
    assert body["metadata"]["features"]["price_columns"] == ["open", "high", "low", "volume"]
    assert set(body["metrics"]["test"]) == {"h1", "h5", "h10", "h30"}
    assert "skill_vs_random_walk" in body["metrics"]["test"]["h30"]
    assert "test_forecasts" not in body["metrics"]
    assert body["versions"] == [body["version"]]  # the only one kept
    assert len(response.content) < 50_000


def test_model_detail_of_an_untrained_symbol_is_404(client: TestClient) -> None:
    response = client.get("/models/MSFT")
    assert response.status_code == 404
    assert response.json()["error"] == "model_not_found"


def test_empty_or_missing_models_dir_lists_nothing(make_app, tmp_path) -> None:
    with TestClient(make_app(models_dir=tmp_path / "absent")) as client:
        assert client.get("/models").json() == {"models": [], "broken": [], "universe": None}
        assert client.get("/ready").json() == {"status": "ready", "models": 0}
        assert client.get("/predict/AAPL").status_code == 404
