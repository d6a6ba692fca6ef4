"""The service serves the gated LightGBM family as it serves the networks."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from ml.state_space.data.sources import load_history
from ml.state_space.models.gbm import GBMConfig
from ml.state_space.registry import ModelRegistry
from ml.state_space.training.gbm_trainer import GBMTraining, train_global
from tests.api.test_api_backtest import FIGURES

SYMBOLS = ("AAPL", "MSFT")
SMALL = GBMTraining(gbm=GBMConfig(max_trees=20, min_data_in_leaf=200, learning_rate=0.1))


@pytest.fixture(scope="module")
def gbm_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lgbm")
    histories = {s: load_history(s, offline=True, cache_dir=root / "no-cache") for s in SYMBOLS}
    fitted = train_global(histories, SMALL)
    results, failures = fitted.members, fitted.failures
    assert not failures
    registry = ModelRegistry(root / "models")
    for result in results:
        registry.save(result.symbol, result.model_bytes, result.metadata, result.metrics)
    return registry.root


def client_for(models: Path, tmp_path: Path) -> TestClient:
    settings = Settings(models_dir=models, offline=True, cache_dir=tmp_path / "price-cache")
    return TestClient(create_app(settings))


def test_predict_serves_each_horizon_by_its_gate(gbm_models, tmp_path):
    registry = ModelRegistry(gbm_models)
    weights = registry.load_metadata("MSFT")["correction"]["blend_weight"]
    with client_for(gbm_models, tmp_path) as client:
        body = client.get("/predict/MSFT").json()
        listed = client.get("/models").json()["models"]
        detail = client.get("/models/MSFT").json()
    assert [h["horizon"] for h in body["horizons"]] == [1, 5, 10, 30]
    for horizon, weight in zip(body["horizons"], weights, strict=True):
        assert horizon["model_weight"] == weight
        serves = "baseline" if weight == 0 else "model" if weight == 1 else "blend"
        assert horizon["serves"] == serves
        assert horizon["baseline"] == "drift-garch-fhs"
        low, mid, high = horizon["price"].values()
        assert low < mid < high
        assert horizon["test_skill_vs_random_walk"] is not None
    assert body["model_version"] == registry.current_version("MSFT")
    assert sorted(m["symbol"] for m in listed) == ["AAPL", "MSFT"]
    assert detail["metadata"]["family"] == "lgbm" and detail["metrics"]["test"]


def test_figures_of_the_same_lightgbm_settings_are_served_and_of_others_withheld(
    gbm_models, tmp_path
):
    registry = ModelRegistry(gbm_models)
    config = registry.load_metadata("MSFT")["config"]
    published = {
        "model": "lgbm",
        "years": [2018, 2022],
        "training": {**config, "seed": 1},
        "symbols": {"MSFT": {f"h{h}": FIGURES for h in (1, 5, 10, 30)}},
    }
    registry.save_backtest(published)
    with client_for(gbm_models, tmp_path) as client:
        served = client.get("/predict/MSFT").json()["horizons"]
    registry.save_backtest(
        {**published, "training": {**config, "gbm": {**config["gbm"], "num_leaves": 31}}}
    )
    with client_for(gbm_models, tmp_path) as client:
        withheld = client.get("/predict/MSFT").json()["horizons"]
    registry.backtest_path.unlink()
    assert all(h["backtest"]["pinball_skill"] == FIGURES["pinball_skill"] for h in served)
    assert all(h["backtest"] is None for h in withheld)


def test_the_model_policy_serves_lightgbm_alone_with_a_warning_where_it_has_no_weight(
    gbm_models, tmp_path
):
    with client_for(gbm_models, tmp_path) as client:
        blended = client.get("/predict/MSFT").json()["horizons"]
    settings = Settings(
        models_dir=gbm_models,
        offline=True,
        cache_dir=tmp_path / "price-cache",
        unskilled_forecast="model",
    )
    with TestClient(create_app(settings)) as client:
        raw = client.get("/predict/MSFT").json()["horizons"]
    for mixed, alone in zip(blended, raw, strict=True):
        if mixed["model_weight"] == 0:
            assert alone["serves"] == "model" and "lgbm model alone" in alone["warning"]
        else:
            assert alone["warning"] is None
