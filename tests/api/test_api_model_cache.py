"""Model and history caching: hot reload, one load per symbol under concurrency, LRU, TTL."""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor

import keras
from fastapi.testclient import TestClient

from api import model_cache
from ml.state_space.registry import ModelRegistry


def save_new_version(registry: ModelRegistry, symbol: str, version: str) -> None:
    """What a training run does: new weights/metadata/metrics via the registry."""
    metrics = {**registry.load_metrics(symbol), "version": version}
    metrics["test"]["h1"]["skill_vs_random_walk"] = 0.123
    registry.save(
        symbol,
        registry.weights_path(symbol).read_bytes(),
        {**registry.load_metadata(symbol), "version": version},
        metrics,
    )


def loads(client: TestClient) -> float:
    metrics = client.app.state.metrics
    return metrics.registry.get_sample_value("mamba_api_model_loads_total", {"outcome": "ok"}) or 0


def test_a_newly_saved_model_is_served_without_restart(
    client: TestClient, registry: ModelRegistry
) -> None:
    first = client.get("/predict/AAPL").json()
    save_new_version(registry, "AAPL", "v2-hot-reload")
    second = client.get("/predict/AAPL").json()
    assert first["model_version"] != second["model_version"] == "v2-hot-reload"
    assert second["horizons"][0]["test_skill_vs_random_walk"] == 0.123
    assert client.get("/models/AAPL").json()["version"] == "v2-hot-reload"
    assert loads(client) == 2
    client.get("/predict/AAPL")
    assert loads(client) == 2, "unchanged files are not reloaded"


def test_a_rolled_back_version_is_served_without_restart(
    client: TestClient, registry: ModelRegistry
) -> None:
    first = client.get("/predict/AAPL").json()["model_version"]
    save_new_version(registry, "AAPL", "v2-to-roll-back")
    assert client.get("/predict/AAPL").json()["model_version"] == "v2-to-roll-back"
    registry.rollback("AAPL")
    assert client.get("/predict/AAPL").json()["model_version"] == first
    detail = client.get("/models/AAPL").json()
    assert detail["version"] == first
    assert detail["versions"] == [first, "v2-to-roll-back"]  # still there to roll forward


def test_metrics_of_another_version_are_not_shown_as_this_ones_skill(
    client: TestClient, registry: ModelRegistry
) -> None:
    registry.save(
        "AAPL",
        registry.weights_path("AAPL").read_bytes(),
        {**registry.load_metadata("AAPL"), "version": "v3"},
        registry.load_metrics("AAPL"),  # still the old version's metrics
    )
    body = client.get("/predict/AAPL").json()
    assert body["model_version"] == "v3"
    assert all(h["test_skill_vs_random_walk"] is None for h in body["horizons"])


def test_concurrent_first_requests_load_a_model_once(client: TestClient) -> None:
    service = client.app.state.service
    with ThreadPoolExecutor(8) as pool:
        models = list(pool.map(service.models.get, ["AAPL"] * 16))
    assert len({id(model) for model in models}) == 1
    assert loads(client) == 1


def test_the_model_cache_is_a_bounded_lru(make_app) -> None:
    with TestClient(make_app(model_cache_size=1)) as client:
        for symbol in ("AAPL", "AAPL", "%5EGSPC", "AAPL"):
            assert client.get(f"/predict/{symbol}").status_code == 200
        assert loads(client) == 3
        assert len(client.app.state.service.models) == 1


def test_history_is_reused_for_its_ttl_only(make_app) -> None:
    def history_hits(client: TestClient) -> float:
        registry = client.app.state.metrics.registry
        return (
            registry.get_sample_value(
                "mamba_api_cache_lookups_total", {"cache": "history", "result": "hit"}
            )
            or 0
        )

    with TestClient(make_app(history_ttl_s=60)) as client:
        client.get("/predict/AAPL")
        client.get("/predict/AAPL")
        assert history_hits(client) == 1
    with TestClient(make_app(history_ttl_s=0)) as client:
        first = client.get("/predict/AAPL").json()
        second = client.get("/predict/AAPL").json()
        assert history_hits(client) == 0
        assert first == second, "recomputing from the same prices gives the same forecast"


def test_the_kernel_cache_is_cleared_every_few_loads_and_models_keep_serving(
    make_app, monkeypatch
) -> None:
    clears = []
    clear_session = keras.utils.clear_session
    monkeypatch.setattr(model_cache, "CLEAR_EVERY_LOADS", 2)
    monkeypatch.setattr(model_cache, "_LOADS", itertools.count(1))
    monkeypatch.setattr(
        model_cache.keras.utils,
        "clear_session",
        lambda **kwargs: clears.append(kwargs) or clear_session(**kwargs),
    )
    with TestClient(make_app(model_cache_size=1, history_ttl_s=0)) as client:
        first = client.get("/predict/AAPL").json()  # load 1
        client.get("/predict/%5EGSPC")  # load 2: a clear
        again = client.get("/predict/AAPL").json()  # load 3, after the clear
    assert len(clears) == 1 and clears[0] == {"free_memory": False}
    assert again["horizons"] == first["horizons"]
