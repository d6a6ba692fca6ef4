"""The universe network's parts: per-window standardisation, sampled epochs, OHLCV inputs
and a forecast for a series the pooled network was never fitted on."""

from __future__ import annotations

from dataclasses import replace

import keras
import numpy as np
import pandas as pd
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from ml.state_space.data.quality import DataQualityError
from ml.state_space.data.sources import load_bundled
from ml.state_space.engine.loop import TrainingBatches
from ml.state_space.evaluation.backtest import (
    BacktestConfig,
    GlobalBacktestTask,
    plan_tasks,
)
from ml.state_space.models.lstm import build_lstm
from ml.state_space.models.mamba.forecaster import MambaForecaster
from ml.state_space.models.mamba.layers import WindowStandardization
from ml.state_space.models.mamba.model import build_model
from ml.state_space.models.neural import NeuralForecaster
from ml.state_space.models.pooled import PooledNeuralForecaster
from tests.conftest import tiny_training_config, tiny_universe_config

FITTED, UNSEEN = ("AAPL", "KO", "XOM"), "MSFT"


def test_window_standardization_matches_a_numpy_reference():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(4, 12, 5)).astype("float32")
    x[:, :, 4] = 7.0  # a feature constant over the window is only centred
    rows = 9
    head = x[:, :rows].astype(np.float64)
    std = np.maximum(head.std(axis=1, keepdims=True), 1e-3)
    expected = (x - head.mean(axis=1, keepdims=True)) / std
    out = np.asarray(WindowStandardization(rows)(x))
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out[:, :, 4], 0.0)
    # no series statistic survives: any affine map of a feature gives the same window
    np.testing.assert_allclose(
        np.asarray(WindowStandardization(rows)(x * 50.0 - 4.0)), out, rtol=1e-4, atol=1e-4
    )


def test_window_standardization_keeps_the_steps_after_its_rows_causal():
    x = np.random.default_rng(1).normal(size=(2, 10, 3)).astype("float32")
    layer = WindowStandardization(rows=6)
    changed = x.copy()
    changed[:, 8] += 10.0  # a later step, as a supervised step's future is
    before, after = np.asarray(layer(x)), np.asarray(layer(changed))
    np.testing.assert_array_equal(np.delete(after, 8, axis=1), np.delete(before, 8, axis=1))
    with pytest.raises(ValueError, match="exceeds the window length"):
        WindowStandardization(rows=11).build((None, 10, 3))


@pytest.mark.parametrize("build", [build_model, build_lstm])
def test_a_network_with_window_standardization_saves_and_loads(build, tmp_path):
    config = replace(tiny_training_config().model, window_norm_rows=11)
    network = build(config, 4)
    x = np.random.default_rng(2).normal(size=(3, config.seq_len, 4)).astype("float32")
    network.save(tmp_path / "net.keras")
    loaded = keras.saving.load_model(tmp_path / "net.keras", compile=False)
    np.testing.assert_allclose(loaded(x), network(x), rtol=1e-6)
    assert loaded.get_layer("window_norm").rows == 11


def test_a_window_standardised_on_rows_a_supervised_step_follows_is_refused():
    model = replace(tiny_training_config().model, window_norm_rows=20)  # seq_len 20
    with pytest.raises(ValueError, match="first 11 rows at most"):
        tiny_training_config(model=model, supervised_steps=10)
    tiny_training_config(model=replace(model, window_norm_rows=11), supervised_steps=10)


def _segments(lengths: list[int], n_features: int = 2) -> list[tuple[np.ndarray, np.ndarray]]:
    """Read-only window views whose every value names its series and anchor."""
    segments = []
    for series, n in enumerate(lengths):
        rows = (1000.0 * series + np.arange(n + 3))[:, None] * np.ones((1, n_features))
        x = sliding_window_view(rows.astype("f4"), 4, axis=0).transpose(0, 2, 1)  # (n, 4, F)
        y = (1000.0 * series + np.arange(n)).astype("f4")[:, None] + 3.0 * np.ones((1, 2), "f4")
        segments.append((x, y))
    return segments


@pytest.mark.parametrize("steps", [1, 3])
def test_a_sampled_epoch_draws_a_fixed_number_of_windows_from_views(steps):
    segments = _segments([300, 500, 200])
    batches = TrainingBatches(segments, 8, None, seed=4, supervised_steps=steps, max_windows=64)
    assert batches.sampled and len(batches) == 8
    drawn = []
    for _ in range(3):
        epoch = [batches[i] for i in range(len(batches))]
        for xb, yb in epoch:
            anchors = xb[:, -1, 0]  # a window's last row names its anchor
            expected = anchors[:, None] + np.arange(1 - steps, 1) if steps > 1 else anchors
            np.testing.assert_array_equal(yb[..., 0], expected)
        drawn.append(np.concatenate([xb[:, -1, 0] for xb, _ in epoch]))
        batches.on_epoch_end()
    assert len(np.unique(drawn[0])) == 64  # without replacement
    assert not np.array_equal(drawn[0], drawn[1])  # a new draw every epoch
    assert {int(a) // 1000 for a in np.concatenate(drawn)} == {0, 1, 2}  # every series
    assert all(not x.flags.writeable for x, _ in segments)  # the views are only read


def test_a_cap_above_the_windows_changes_nothing():
    segments = _segments([40, 53])
    capped = TrainingBatches(segments, 4, None, seed=1, supervised_steps=3, max_windows=10_000)
    plain = TrainingBatches(segments, 4, None, seed=1, supervised_steps=3)
    assert not capped.sampled and len(capped) == len(plain)
    for index in range(len(plain)):
        for ours, theirs in zip(capped[index], plain[index], strict=True):
            np.testing.assert_array_equal(ours, theirs)


@pytest.fixture(scope="module")
def histories() -> dict[str, pd.DataFrame]:
    return {s: load_bundled(s).loc[:"2019-12-31"] for s in (*FITTED, UNSEEN)}


@pytest.fixture(scope="module")
def universe(histories) -> PooledNeuralForecaster:
    """The universe network's configuration, tiny: OHLCV inputs, one normaliser for all,
    windows standardised on their own, sampled epochs."""
    config = tiny_universe_config(model=replace(tiny_training_config().model, window_norm_rows=16))
    fitted = {s: histories[s] for s in FITTED}
    return PooledNeuralForecaster(MambaForecaster, config).fit_many(fitted)


def test_the_universe_network_forecasts_a_series_it_never_saw(universe, histories):
    assert UNSEEN not in universe.members
    prices = histories[UNSEEN]
    unseen = universe.for_series(UNSEEN, prices)
    card = unseen.card
    assert card.symbol == UNSEEN and card.features.price_columns == [
        "open",
        "high",
        "low",
        "volume",
    ]
    fitted_card = universe.for_series("KO").card
    assert card.normalizer == fitted_card.normalizer  # the shared one, not its own
    assert card.target_scale == fitted_card.target_scale
    assert set(unseen.model_weights()) == {1, 5}  # gated on its own validation windows
    shared = universe.shared.network.get_weights()
    for ours, theirs in zip(unseen.network.get_weights(), shared, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    origins = prices.index[-30:]
    forecast = unseen.predict_quantiles(prices, origins)
    assert forecast.shape == (30, 2, 3) and np.isfinite(forecast).all()
    assert (np.diff(forecast, axis=-1) >= 0).all()
    frame = unseen.predict(prices)  # the notebook API: any price frame
    assert list(frame.index) == [1, 5] and frame.attrs["symbol"] == UNSEEN
    loaded = NeuralForecaster.from_bytes(unseen.to_bytes(), card)
    np.testing.assert_allclose(loaded.predict_quantiles(prices, origins), forecast, rtol=1e-5)


def test_an_unseen_series_needs_the_history_a_fit_would(universe, histories):
    with pytest.raises(DataQualityError):
        universe.for_series(UNSEEN, histories[UNSEEN].iloc[-200:])
    with pytest.raises(ValueError, match="given its history"):
        universe.for_series(UNSEEN)


def test_series_without_ohlcv_are_left_out_of_an_ohlcv_fit(histories):
    config = tiny_training_config(pooled=True, pooled_ohlcv=True, epochs=1, refit=False)
    close_only = histories["KO"][["close"]]
    pooled = PooledNeuralForecaster(MambaForecaster, config)
    pooled.fit_many({"AAPL": histories["AAPL"], "KO": close_only})
    assert set(pooled.members) == {"AAPL"} and "open" in pooled.skipped["KO"]


def test_a_series_own_normaliser_cannot_forecast_an_unseen_series(histories):
    config = tiny_training_config(pooled=True, epochs=1, refit=False)
    pooled = PooledNeuralForecaster(MambaForecaster, config)
    pooled.fit_many({s: histories[s] for s in FITTED[:2]})
    with pytest.raises(ValueError, match="pooled_normalizer='global'"):
        pooled.for_series(UNSEEN, histories[UNSEEN])


def test_a_pooled_backtest_forecasts_held_out_symbols_and_skips_one_it_cannot(histories):
    model = replace(tiny_training_config().model, window_norm_rows=16)
    training = tiny_universe_config(windows_per_epoch=None, model=model)
    config = BacktestConfig(years=(2019,), models=("mamba", "rw"), training=training)
    close_only = load_bundled("PG").loc[:"2019-12-31", ["close"]]  # no OHLCV to forecast from
    tests = {UNSEEN: histories[UNSEEN], "KO": histories["KO"], "PG": close_only}
    tasks, skipped = plan_tasks(tests, config, {s: histories[s] for s in FITTED})
    (task,) = [t for t in tasks if isinstance(t, GlobalBacktestTask)]
    assert not skipped and set(task.histories) == set(FITTED)
    rows = task.run()
    assert set(rows["symbol"]) == {UNSEEN, "KO"}  # PG is logged, not fatal
    assert rows["fold"].eq(2019).all() and np.isfinite(rows[["q0.1", "q0.5", "q0.9"]]).all().all()


def test_a_series_with_fewer_validation_windows_than_supervised_steps_still_fits(histories):
    config = tiny_training_config(pooled=True, supervised_steps=5, epochs=1, refit=False)
    shortest = histories["KO"].iloc[-config.min_history(0.0) :]  # one validation window
    pooled = PooledNeuralForecaster(MambaForecaster, config)
    pooled.fit_many({"AAPL": histories["AAPL"], "KO": shortest})
    assert set(pooled.members) == {"AAPL", "KO"}
    assert pooled.for_series("KO").card.split["val"].windows < 5
    alone = PooledNeuralForecaster(MambaForecaster, config).fit_many({"KO": shortest})
    assert alone.for_series("KO").history[0]["val_loss"] > 0  # scored at its last step
