"""Published walk-forward figures travel with every forecast and model detail."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from ml.state_space.data.sources import load_bundled
from ml.state_space.models.fallback import fallback_from_dict

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


def publish(registry, model: str = "mamba", **training_changes) -> None:
    """Publish figures for AAPL from a backtest of the served model's configuration."""
    training = {**registry.load_metadata("AAPL")["config"], "seed": 7, **training_changes}
    registry.save_backtest(
        {
            "model": model,
            "baseline": "rw",
            "years": [2018, 2022],
            "seeds": [7, 8],
            "training": training,
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


@pytest.mark.parametrize("changes", [{"epochs": 3}, {"training": None}])
def test_figures_of_another_training_configuration_are_withheld(registry, make_app, changes):
    if "training" in changes:  # a file written before configurations were recorded
        publish(registry)
        published = registry.load_backtest()
        registry.save_backtest({k: v for k, v in published.items() if k != "training"})
    else:
        publish(registry, **changes)
    with TestClient(make_app()) as client:
        horizons = client.get("/predict/AAPL").json()["horizons"]
        detail = client.get("/models/AAPL").json()["backtest"]
    assert all(h["backtest"] is None for h in horizons) and detail is None


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


def test_by_default_each_horizon_serves_what_was_trained_and_says_what_it_is(client, registry):
    correction = registry.load_metadata("AAPL").get("correction")
    weights = correction["blend_weight"] if correction else [1.0] * 4
    expected = ["baseline" if w == 0 else "model" if w == 1 else "blend" for w in weights]
    horizons = client.get("/predict/AAPL").json()["horizons"]
    assert [h["serves"] for h in horizons] == expected
    assert all(h["warning"] is None for h in horizons)


def test_horizons_without_backtest_skill_can_serve_the_baseline(registry, make_app):
    publish(registry)  # AAPL: beats_baseline false at every horizon
    with TestClient(make_app(unskilled_forecast="baseline")) as client:
        body = client.get("/predict/AAPL").json()
    card = registry.load_metadata("AAPL")
    network = card["config"]["model"]
    fallback = fallback_from_dict(card["fallback"], network["horizons"], network["quantiles"])
    prices = load_bundled("AAPL")
    expected = fallback.predict_quantiles(prices, prices.index[-1:])[0]
    for horizon, quantiles in zip(body["horizons"], expected, strict=True):
        assert horizon["serves"] == "baseline" and horizon["warning"] is None
        assert horizon["baseline"] == "drift-garch-fhs"
        served = [horizon["log_return"][level] for level in ("0.1", "0.5", "0.9")]
        assert served == pytest.approx(quantiles, abs=1e-6)


def test_horizons_without_backtest_skill_can_serve_the_network_with_a_warning(registry, make_app):
    publish(registry)
    with TestClient(make_app(unskilled_forecast="model")) as client:
        body = client.get("/predict/AAPL").json()
        gspc = client.get("/predict/%5EGSPC").json()["horizons"]
    for horizon in body["horizons"]:
        assert horizon["serves"] == "model"
        assert (
            "did not beat the baseline in the walk-forward backtest 2018-2022"
            in (horizon["warning"])
        )
    assert any(h["log_return"]["0.5"] != 0.0 for h in body["horizons"])
    gspc_weights = (registry.load_metadata("^GSPC").get("correction") or {}).get("blend_weight")
    for horizon, weight in zip(gspc, gspc_weights or [None] * 4, strict=True):
        assert (horizon["warning"] is not None) == (weight == 0.0)  # validation evidence only


def test_an_unknown_unskilled_policy_is_refused_at_start_up(make_app):
    with pytest.raises(ValueError, match="unskilled_forecast"):
        make_app(unskilled_forecast="always")
