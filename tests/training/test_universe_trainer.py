"""The universe network's training job: a version per fitted symbol, the shared network
stored once, and an unseen symbol forecast by the rebuilt network."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ml.state_space.forecast import ServedModel, UniverseNetwork
from ml.state_space.models.card import ModelCard
from ml.state_space.models.pooled import PooledNeuralForecaster
from ml.state_space.registry import SHARED_NAME, ModelRegistry
from ml.state_space.training.universe_trainer import train_universe
from tests.conftest import (
    UNIVERSE_FITTED,
    UNIVERSE_UNSEEN,
    tiny_training_config,
    tiny_universe_config,
    universe_histories,
)


@pytest.fixture(scope="module")
def histories() -> dict[str, pd.DataFrame]:
    return universe_histories()


def test_each_fitted_symbol_has_a_version_over_one_shared_network(universe_models, histories):
    registry = ModelRegistry(universe_models)
    assert registry.symbols() == sorted(UNIVERSE_FITTED)
    network_bytes = {registry.weights_path(s).read_bytes() for s in UNIVERSE_FITTED}
    shared = registry.shared()
    assert network_bytes == {shared.weights_path(SHARED_NAME).read_bytes()}
    card, metrics = shared.load_metadata(SHARED_NAME), shared.load_metrics(SHARED_NAME)
    assert card["correction"] is None and card["fallback"] is None  # each symbol fits its own
    assert card["config"]["pooled_normalizer"] == "global"
    assert metrics["symbols"] == list(UNIVERSE_FITTED)
    assert metrics["test"]["h1"]["symbols"] == 3
    for symbol in UNIVERSE_FITTED:
        prices = histories[symbol].iloc[-700:]  # the config's days
        member = registry.load_metrics(symbol)
        test = member["split"]["test"]
        assert test["last"] == str(prices.index[-1 - 5].date())  # the longest horizon's embargo
        assert len(member["test_forecasts"]["anchor_dates"]) == test["windows"]
        assert set(member["test"]) == {"h1", "h5"} and member["model_weight"].keys() == {
            "h1",
            "h5",
        }
        assert registry.load_metadata(symbol)["normalizer"] == card["normalizer"]


def test_the_shared_network_gated_on_a_fitted_symbol_serves_its_version(universe_models, histories):
    registry = ModelRegistry(universe_models)
    universe = UniverseNetwork.from_artifacts(registry.shared().load_artifacts(SHARED_NAME), {})
    prices = histories["KO"].iloc[-700:]
    member = ServedModel.from_artifacts(registry.load_artifacts("KO"), {})
    as_unseen = universe.served_for("KO", prices)
    assert as_unseen.model_weights == member.model_weights
    origins = prices.index[-20:]
    np.testing.assert_allclose(
        as_unseen.model.predict_quantiles(prices, origins),
        member.model.predict_quantiles(prices, origins),
        rtol=1e-5,
        atol=1e-7,
    )


def test_an_unseen_symbol_is_forecast_and_marked_unseen(universe_models, histories):
    shared = ModelRegistry(universe_models).shared()
    universe = UniverseNetwork.from_artifacts(shared.load_artifacts(SHARED_NAME), {})
    prices = histories[UNIVERSE_UNSEEN]
    forecast = universe.predict(prices, UNIVERSE_UNSEEN)
    assert forecast.unseen and forecast.symbol == UNIVERSE_UNSEEN
    assert forecast.model_version == shared.current_version(SHARED_NAME)
    assert forecast.as_of == "2019-12-31"
    for horizon in forecast.horizons:
        low, mid, high = horizon.log_return.values()
        assert np.isfinite([low, mid, high]).all() and low < mid < high
        assert horizon.model_weight is not None and horizon.test_skill_vs_random_walk is None
    assert universe.history_rows == universe.network.config.min_history(0.0)


def test_a_member_card_is_no_shared_network(universe_models):
    registry = ModelRegistry(universe_models)
    artifacts = registry.load_artifacts("KO")
    with pytest.raises(ValueError, match="no shared network"):
        PooledNeuralForecaster.from_shared(
            artifacts.model_bytes, ModelCard.from_dict(artifacts.metadata)
        )


def test_symbols_too_short_are_left_out_and_a_series_normaliser_is_refused(histories):
    config = tiny_training_config(pooled=True, pooled_normalizer="series")
    with pytest.raises(ValueError, match="one global normaliser"):
        train_universe(histories, config)
    short = {"SHORT": histories["KO"].iloc[-300:]}
    result = train_universe(short, tiny_training_config(pooled=True, pooled_normalizer="global"))
    assert result.members == [] and result.shared is None
    assert "rows" in str(result.failures["SHORT"])


TINY_SETTINGS = {
    "model.d_model": "16",
    "model.n_layers": "1",
    "model.d_state": "8",
    "model.head_dim": "8",
    "model.seq_len": "20",
    "model.chunk_size": "10",
    "model.horizons": "[1,5]",
    "model.jit_compile": "false",
    "epochs": "1",
    "days": "700",
    "windows_per_epoch": "128",
    "supervised_steps": "5",
}


def test_the_command_trains_saves_and_reports_each_symbol(tmp_path, capsys):
    from scripts.train_universe_model import main

    sets = [arg for key, value in TINY_SETTINGS.items() for arg in ("--set", f"{key}={value}")]
    argv = ["--symbols", "AAPL,KO,ZZZZ", "--offline", "--models-dir", str(tmp_path), *sets]
    assert main(argv) == 0  # ZZZZ has no data: reported, the others trained
    registry = ModelRegistry(tmp_path)
    assert registry.symbols() == ["AAPL", "KO"]
    assert registry.shared().load_metrics(SHARED_NAME)["symbols"] == ["AAPL", "KO"]
    run = json.loads(next(registry.root.glob("runs/*.json")).read_text())
    assert {o["symbol"]: o["status"] for o in run["outcomes"]} == {
        "AAPL": "trained",
        "KO": "trained",
        "ZZZZ": "no_data",
    }
    assert main(["--set", "pooled_normalizer=series", "--models-dir", str(tmp_path)]) == 2
    assert main(["--set", "nonsense=1", "--models-dir", str(tmp_path)]) == 2
    assert "no such setting" in capsys.readouterr().err


def test_with_a_refit_the_tested_network_is_retrained_on_every_price(histories):
    fitted = {s: histories[s].iloc[-700:] for s in UNIVERSE_FITTED[:2]}
    result = train_universe(fitted, tiny_universe_config(refit=True))
    assert [m.symbol for m in result.members] == list(UNIVERSE_FITTED[:2])
    served = any(w > 0 for m in result.members for w in m.metrics["model_weight"].values())
    for member in result.members:
        # retrained for the best epochs where the network serves any stock; else (as a
        # per-symbol refit) only the fallbacks are refitted, on every price
        expected = member.metrics["best_epoch"] if served else None
        assert member.metrics["refit_epochs"] == expected
        last = str(fitted[member.symbol].index[-1].date())
        assert member.metadata["data"]["last_date"] == last
