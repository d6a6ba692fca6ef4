"""Published walk-forward figures travel with every forecast and model detail."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

FIGURES = {
    "n": 1200,
    "mae_skill": -0.01,
    "dm_mae_pvalue": 0.3,
    "pinball_skill": 0.02,
    "dm_pinball_pvalue": 0.01,
    "band_coverage": 0.79,
    "significantly_better": False,
    "significantly_worse": False,
    "beats_baseline": False,
}


def publish(registry, model: str = "mamba") -> None:
    registry.save_backtest(
        {
            "model": model,
            "baseline": "rw",
            "years": [2018, 2022],
            "seeds": [42],
            "command": "python scripts/backtest.py",
            "symbols": {"AAPL": {f"h{h}": FIGURES for h in (1, 5, 10, 30)}},
        }
    )


def test_without_a_published_backtest_the_figures_are_null(client: TestClient):
    body = client.get("/predict/AAPL").json()
    assert all(h["backtest"] is None for h in body["horizons"])
    assert client.get("/models/AAPL").json()["backtest"] is None


def test_published_figures_reach_predict_and_model_detail(registry, make_app):
    publish(registry)
    with TestClient(make_app()) as client:
        horizons = client.get("/predict/AAPL").json()["horizons"]
        detail = client.get("/models/AAPL").json()["backtest"]
        other = client.get("/predict/%5EGSPC").json()["horizons"]
    expected = {key: FIGURES[key] for key in ("n", "mae_skill", "pinball_skill")}
    for horizon in horizons:
        assert horizon["backtest"]["years"] == [2018, 2022]
        assert {k: horizon["backtest"][k] for k in expected} == expected
        assert horizon["backtest"]["beats_baseline"] is False
    assert set(detail) == {"h1", "h5", "h10", "h30"}
    assert all(h["backtest"] is None for h in other)  # no figures for ^GSPC


@pytest.mark.parametrize("content", ["lstm", "{not json"])
def test_another_familys_or_a_broken_file_shows_no_figures(registry, make_app, content):
    if content == "lstm":
        publish(registry, model="lstm")
    else:
        registry.backtest_path.write_text(content)
    with TestClient(make_app()) as client:
        response = client.get("/predict/AAPL")
    assert response.status_code == 200
    assert all(h["backtest"] is None for h in response.json()["horizons"])


def test_each_horizon_says_how_much_of_the_network_it_serves(client: TestClient, registry):
    correction = registry.load_metadata("AAPL").get("correction")
    expected = correction["blend_weight"] if correction else [None] * 4
    served = [h["model_weight"] for h in client.get("/predict/AAPL").json()["horizons"]]
    assert served == expected
