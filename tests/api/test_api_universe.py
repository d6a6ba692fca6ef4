"""The service serves the universe network: each fitted symbol's version, and any other
symbol (bundled or posted) through the shared network, marked unseen."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from ml.state_space.registry import SHARED_NAME, ModelRegistry
from tests.api.test_api_backtest import FIGURES
from tests.conftest import UNIVERSE_UNSEEN, universe_histories

OHLCV = ("open", "high", "low", "close", "volume")


@pytest.fixture
def models(universe_models: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(universe_models, tmp_path / "models"))


def client_for(models: Path, tmp_path: Path) -> TestClient:
    settings = Settings(models_dir=models, offline=True, cache_dir=tmp_path / "price-cache")
    return TestClient(create_app(settings))


def rows(symbol: str, n: int) -> list[dict]:
    frame = universe_histories()[symbol].iloc[-n:]
    return [
        {"date": str(day.date()), **{c: float(frame.at[day, c]) for c in OHLCV}}
        for day in frame.index
    ]


def assert_quantiles(body: dict) -> None:
    assert [h["horizon"] for h in body["horizons"]] == [1, 5]
    for horizon in body["horizons"]:
        low, mid, high = horizon["price"].values()
        assert np.isfinite([low, mid, high]).all() and low < mid < high
        assert horizon["serves"] in ("model", "blend", "baseline")


def test_a_fitted_symbol_is_served_its_own_version(models, tmp_path):
    registry = ModelRegistry(models)
    with client_for(models, tmp_path) as client:
        body = client.get("/predict/KO").json()
    assert_quantiles(body)
    assert body["unseen"] is False and body["model_version"] == registry.current_version("KO")


def test_a_bundled_symbol_without_a_version_is_forecast_by_the_shared_network(models, tmp_path):
    shared = ModelRegistry(models).shared()
    with client_for(models, tmp_path) as client:
        body = client.get(f"/predict/{UNIVERSE_UNSEEN}").json()
        again = client.get(f"/predict/{UNIVERSE_UNSEEN}").json()
    assert_quantiles(body)
    assert body["unseen"] is True and body["symbol"] == UNIVERSE_UNSEEN
    assert body["model_version"] == shared.current_version(SHARED_NAME)
    assert again == body


def test_posted_prices_of_a_symbol_never_seen_get_a_forecast_marked_unseen(models, tmp_path):
    with client_for(models, tmp_path) as client:
        body = client.post("/predict/NEWCO", json={"prices": rows(UNIVERSE_UNSEEN, 900)})
        same = client.post("/predict/NEWCO", json={"prices": rows(UNIVERSE_UNSEEN, 900)})
        short = client.post("/predict/NEWCO", json={"prices": rows(UNIVERSE_UNSEEN, 300)})
        close_only = [{"date": r["date"], "close": r["close"]} for r in rows(UNIVERSE_UNSEEN, 900)]
        no_ohlcv = client.post("/predict/NEWCO", json={"prices": close_only})
    assert body.status_code == 200, body.text
    assert body.json()["unseen"] is True and body.json()["symbol"] == "NEWCO"
    assert body.json()["as_of"] == "2019-12-31"
    assert_quantiles(body.json())
    assert same.json() == body.json()  # a pure function of the prices
    assert short.status_code == 422 and "rows" in short.json()["message"]
    assert no_ohlcv.status_code == 422


def test_models_lists_the_universe_network(models, tmp_path):
    with client_for(models, tmp_path) as client:
        listed = client.get("/models").json()
    assert sorted(m["symbol"] for m in listed["models"]) == ["AAPL", "KO", "XOM"]
    universe = listed["universe"]
    assert universe["symbol"] == SHARED_NAME and universe["fitted_symbols"] == 3
    shutil.rmtree(models / "shared")
    with client_for(models, tmp_path) as client:
        assert client.get("/models").json()["universe"] is None
        assert client.get(f"/predict/{UNIVERSE_UNSEEN}").status_code == 404


def test_an_unseen_forecast_carries_the_figures_published_for_held_out_symbols(models, tmp_path):
    registry = ModelRegistry(models)
    config = registry.shared().load_metadata(SHARED_NAME)["config"]
    held_out = {**FIGURES, "symbols": 7, "dm_mae_pvalue": None, "dm_pinball_pvalue": None}
    published = {
        "model": "mamba",
        "years": [2012, 2015],
        "training": {**config, "seed": 7},
        "symbols": {"KO": {f"h{h}": FIGURES for h in (1, 5)}},
        "unseen": {f"h{h}": held_out for h in (1, 5)},
    }
    registry.save_backtest(published)
    with client_for(models, tmp_path) as client:
        unseen = client.get(f"/predict/{UNIVERSE_UNSEEN}").json()["horizons"]
        fitted = client.get("/predict/KO").json()["horizons"]
    assert all(h["backtest"]["symbols"] == 7 for h in unseen)
    assert all(h["backtest"]["years"] == [2012, 2015] for h in unseen)
    assert all(h["backtest"]["symbols"] is None for h in fitted)
    registry.save_backtest({**published, "training": {**config, "epochs": 99}})
    with client_for(models, tmp_path) as client:
        withheld = client.get(f"/predict/{UNIVERSE_UNSEEN}").json()["horizons"]
    assert all(h["backtest"] is None for h in withheld)
