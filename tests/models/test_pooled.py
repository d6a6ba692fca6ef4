"""One network for many series: per-series pipelines, gates and fallbacks around it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.state_space.data.sources import load_bundled
from ml.state_space.engine import loop
from ml.state_space.engine.loop import TrainingBatches
from ml.state_space.evaluation.backtest import (
    BacktestConfig,
    GlobalBacktestTask,
    plan_tasks,
)
from ml.state_space.models.mamba.forecaster import MambaForecaster
from ml.state_space.models.neural import NeuralForecaster
from ml.state_space.models.pooled import PooledNeuralForecaster
from tests.conftest import tiny_training_config

SYMBOLS = ("AAPL", "KO", "XOM")


@pytest.fixture(scope="module")
def histories() -> dict[str, pd.DataFrame]:
    return {symbol: load_bundled(symbol).loc[:"2019-12-31"] for symbol in SYMBOLS}


@pytest.fixture(scope="module")
def pooled(histories) -> PooledNeuralForecaster:
    config = tiny_training_config(pooled=True, blend=False)  # the network is served
    return PooledNeuralForecaster(MambaForecaster, config).fit_many(histories)


def test_every_series_is_served_by_one_network_through_its_own_pipeline(pooled, histories):
    members = [pooled.for_series(symbol) for symbol in SYMBOLS]
    weights = [m.network.get_weights() for m in members]
    for other in weights[1:]:
        for ours, theirs in zip(weights[0], other, strict=True):
            np.testing.assert_array_equal(ours, theirs)
    cards = [m.card for m in members]
    assert [c.symbol for c in cards] == list(SYMBOLS)
    assert all(c.target_scale == cards[0].target_scale for c in cards)  # one scale
    means = [c.normalizer["mean"] for c in cards]
    assert not np.allclose(means[0], means[1])  # each normalised on its own rows
    assert all(c.features.price_columns == [] for c in cards)  # close-only: same columns
    assert all(c.data.last_date == "2019-12-31" for c in cards)  # refitted on every price
    assert all(c.refit_epochs is not None for c in cards)
    origins = histories["KO"].index[-40:]
    ko = pooled.for_series("KO").predict_quantiles(histories["KO"], origins)
    assert ko.shape == (40, 2, 3) and np.isfinite(ko).all()
    assert (np.diff(ko, axis=-1) >= 0).all()


def test_a_pooled_series_forecaster_saves_and_loads_as_a_per_series_one(pooled, histories):
    member = pooled.for_series("XOM")
    loaded = NeuralForecaster.from_bytes(member.to_bytes(), member.card)
    origins = histories["XOM"].index[-25:]
    np.testing.assert_allclose(
        loaded.predict_quantiles(histories["XOM"], origins),
        member.predict_quantiles(histories["XOM"], origins),
        rtol=1e-6,
    )
    assert loaded.card.config["pooled"] is True


def test_the_pooled_network_is_trained_on_the_windows_of_every_series(histories, monkeypatch):
    seen = []

    class Recorded(TrainingBatches):
        def __init__(self, segments, *args, **kwargs):
            seen.append([len(x) for x, _ in segments])
            super().__init__(segments, *args, **kwargs)

    monkeypatch.setattr(loop, "TrainingBatches", Recorded)
    config = tiny_training_config(pooled=True, refit=False, epochs=1)
    pooled = PooledNeuralForecaster(MambaForecaster, config).fit_many(histories)
    alone = MambaForecaster(training_config=config).fit(histories["AAPL"], symbol="AAPL")
    assert len(seen[0]) == len(SYMBOLS)  # one segment per series
    assert seen[0][0] == alone.card.split["train"].windows == seen[1][0]
    assert pooled.for_series("AAPL").card.split == alone.card.split


def test_a_series_too_short_to_fit_is_left_out_and_named(histories):
    short = {**histories, "NEW": histories["KO"].iloc[-120:]}
    pooled = PooledNeuralForecaster(MambaForecaster, tiny_training_config(refit=False, epochs=1))
    pooled.fit_many(short)
    assert set(pooled.members) == set(SYMBOLS) and "NEW" in pooled.skipped
    with pytest.raises(ValueError, match="NEW"):
        pooled.for_series("NEW")
    with pytest.raises(ValueError, match="no usable series"):
        PooledNeuralForecaster(MambaForecaster, tiny_training_config()).fit_many(
            {"NEW": short["NEW"]}
        )


def test_batches_of_several_series_never_mix_them_in_a_windows_targets():
    steps, batch = 3, 4
    segments = []
    for series in range(2):
        n = 40 + 13 * series
        x = (1000 * series + np.arange(n, dtype="f4"))[:, None, None] * np.ones((1, 2, 1), "f4")
        y = (1000 * series + np.arange(n, dtype="f4"))[:, None] * np.ones((1, 2), "f4")
        segments.append((x, y))
    batches = TrainingBatches(segments, batch, augmentor=None, seed=1, supervised_steps=steps)
    assert batches.n_windows == (40 - 2) // 3 + (53 - 2) // 3
    for _ in range(3):
        for index in range(len(batches)):
            xb, yb = batches[index]
            ends = xb[:, 0, 0]
            expected = ends[:, None] + np.arange(1 - steps, 1)  # its last K origins
            np.testing.assert_array_equal(yb[..., 0], expected)
            assert ((yb[..., 0] >= 1000) == (ends >= 1000)[:, None]).all()
        batches.on_epoch_end()


def test_a_pooled_backtest_fits_one_network_per_year_for_every_series(histories):
    config = BacktestConfig(
        years=(2018, 2019), models=("mamba", "rw"), training=tiny_training_config(pooled=True)
    )
    tasks, _ = plan_tasks(histories, config)
    pooled = [t for t in tasks if isinstance(t, GlobalBacktestTask)]
    assert len(pooled) == 2 and tasks[:2] == pooled  # the slow tasks first
    assert all({m.symbol for m in t.members} == set(SYMBOLS) for t in pooled)
    with pytest.raises(ValueError, match="warm starts"):
        BacktestConfig(years=(2019,), training=tiny_training_config(pooled=True), warm_start=True)


def test_a_global_normaliser_puts_every_series_on_one_input_scale(histories):
    config = tiny_training_config(pooled=True, pooled_normalizer="global", blend=False)
    pooled = PooledNeuralForecaster(MambaForecaster, config).fit_many(histories)
    cards = [pooled.for_series(symbol).card for symbol in SYMBOLS]
    assert all(c.normalizer == cards[0].normalizer for c in cards)
    assert all(c.refit_epochs is not None for c in cards)  # refitted with one normaliser too
    origins = histories["AAPL"].index[-10:]
    assert np.isfinite(
        pooled.for_series("AAPL").predict_quantiles(histories["AAPL"], origins)
    ).all()
    with pytest.raises(ValueError, match="pooled_normalizer"):
        tiny_training_config(pooled_normalizer="per-window")
