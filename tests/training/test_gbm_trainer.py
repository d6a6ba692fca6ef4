"""The LightGBM training run: held-out test block, refit, one servable version per symbol."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ml.state_space.forecast import ServedModel
from ml.state_space.models.card import ModelCard
from ml.state_space.models.gbm import GBMConfig, GBMSeriesForecaster
from ml.state_space.models.servable import InsufficientHistoryError
from ml.state_space.registry import ModelRegistry
from ml.state_space.training.gbm_trainer import GBMTraining, train_global
from tests.models.test_gbm import iid, mean_reverting

SMALL = GBMTraining(
    horizons=(1, 5),
    gbm=GBMConfig(max_trees=30, min_data_in_leaf=100, validation_rows=300, learning_rate=0.1),
)


@pytest.fixture(scope="module")
def trained() -> tuple[dict[str, pd.DataFrame], list, dict]:
    histories = {"MR0": mean_reverting(0), "NOISE": iid(2), "SHORT": iid(3, n=300)}
    fitted = train_global(histories, SMALL)
    results, failures = fitted.members, fitted.failures
    return histories, results, failures


def test_a_symbol_with_too_little_history_is_left_out_with_its_reason(trained):
    _, results, failures = trained
    assert [r.symbol for r in results] == ["MR0", "NOISE"]
    assert list(failures) == ["SHORT"] and "rows" in str(failures["SHORT"])


def test_the_test_block_lies_after_the_fit_history_and_an_embargo(trained):
    histories, results, _ = trained
    for result in results:
        prices = histories[result.symbol]
        split = result.metrics["split"]
        test_first = prices.index.get_loc(pd.Timestamp(split["test"]["first"]))
        assert test_first >= len(prices) - int((len(prices) - 250) * 0.15) - 1
        assert split["test"]["last"] == str(prices.index[-1 - max(SMALL.horizons)].date())
        assert set(result.metrics["test"]) == {"h1", "h5"}
        table = result.metrics["test_forecasts"]
        assert len(table["anchor_dates"]) == split["test"]["windows"]


def test_each_version_serves_its_own_gate_over_the_shared_trees(trained, tmp_path):
    histories, results, _ = trained
    assert results[0].model_bytes == results[1].model_bytes  # one global model
    weights = {r.symbol: r.metrics["model_weight"] for r in results}
    assert weights["MR0"]["h1"] > 0.5  # tomorrow undoes part of today
    assert weights["NOISE"] == {"h1": 0.0, "h5": 0.0}

    registry = ModelRegistry(tmp_path)
    for result in results:
        registry.save(result.symbol, result.model_bytes, result.metadata, result.metrics)
    assert registry.weights_path("MR0").name == "model.lgbm.json"
    assert registry.symbols() == ["MR0", "NOISE"]

    noise = histories["NOISE"]
    served = ServedModel.from_artifacts(registry.load_artifacts("NOISE"), {})
    forecast = served.predict(noise, "NOISE")
    assert [h.serves for h in forecast.horizons] == ["baseline", "baseline"]
    assert {h.baseline for h in forecast.horizons} == {"drift-garch-fhs"}
    fallback = served.model.fallback.predict_quantiles(noise, noise.index[-1:])[0]
    np.testing.assert_allclose([list(h.log_return.values()) for h in forecast.horizons], fallback)

    mr = histories["MR0"]
    served = ServedModel.from_artifacts(registry.load_artifacts("MR0"), {})
    assert isinstance(served.model, GBMSeriesForecaster)
    assert served.predict(mr, "MR0").horizons[0].serves in ("model", "blend")


def test_a_reloaded_version_forecasts_exactly_as_the_fitted_model(trained):
    histories, results, _ = trained
    result = results[0]
    card = ModelCard.from_dict(result.metadata)
    reloaded = GBMSeriesForecaster.from_bytes(result.model_bytes, card)
    usable = {s: h for s, h in histories.items() if s != "SHORT"}
    fitted = SMALL.model().fit_many(usable).series(result.symbol)  # deterministic trees

    prices = histories[result.symbol]
    origins = prices.index[-200:-5]
    expected = fitted.predict_variants(prices, origins)
    for variant, quantiles in reloaded.predict_variants(prices, origins).items():
        np.testing.assert_array_equal(quantiles, expected[variant])
    assert card.family == "lgbm" and card.features.names[-1] == "log_vol_60"
    with pytest.raises(InsufficientHistoryError, match="unusable price history"):
        reloaded.predict(prices.iloc[:100])


def test_trees_of_another_model_are_refused(trained):
    _, results, _ = trained
    card = ModelCard.from_dict(results[0].metadata)
    other = {**card.config, "horizons": [1, 5, 10]}
    with pytest.raises(ValueError, match="horizon, quantile"):
        GBMSeriesForecaster.from_bytes(
            results[0].model_bytes, ModelCard.from_dict({**results[0].metadata, "config": other})
        )
    with pytest.raises(ValueError, match="lgbm-quantile-boosters"):
        GBMSeriesForecaster.from_bytes(b'{"format": "other"}', card)


def test_only_the_gated_model_is_trained_for_serving():
    with pytest.raises(ValueError, match="gated"):
        GBMTraining(gbm=GBMConfig(gate=False))


def test_cli_trains_every_symbol_with_data_and_reports_the_others(tmp_path, monkeypatch, capsys):
    from ml.state_space.training import gbm_trainer
    from scripts.train_gbm_models import main

    small = GBMConfig(max_trees=20, min_data_in_leaf=200, learning_rate=0.1)
    monkeypatch.setattr(gbm_trainer, "GBMTraining", lambda seed: GBMTraining(gbm=small, seed=seed))
    models = tmp_path / "lgbm"
    argv = ["--symbols", "AAPL,MSFT,NODATA1", "--offline", "--models-dir", str(models)]
    monkeypatch.setenv("MAMBA_FORECAST_CACHE_DIR", str(tmp_path / "cache"))
    assert main(argv) == 0
    registry = ModelRegistry(models)
    assert registry.symbols() == ["AAPL", "MSFT"]
    assert set(registry.load_metrics("AAPL")["test"]) == {"h1", "h5", "h10", "h30"}
    [run_file] = (models / "runs").glob("*.json")
    statuses = {o["symbol"]: o["status"] for o in json.loads(run_file.read_text())["outcomes"]}
    assert statuses == {"AAPL": "trained", "MSFT": "trained", "NODATA1": "no_data"}
    assert "skill h30" in capsys.readouterr().out


def test_cli_rejects_malformed_symbols_before_any_work(tmp_path, capsys):
    from scripts.train_gbm_models import main

    assert main(["--symbols", "AAPL,../etc", "--models-dir", str(tmp_path)]) == 2
    assert "../etc" in capsys.readouterr().err and not (tmp_path / "runs").exists()
