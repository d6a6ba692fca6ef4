"""Feature engineering on real bundled prices: finite, scale-free, causal, tail == full history."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from ml.state_space.data.sources import load_bundled
from ml.state_space.data.universe import BUNDLED_SYMBOLS
from ml.state_space.features.engineer import (
    CLOSE_FEATURES,
    OHLC_FEATURES,
    VOLUME_FEATURES,
    TimeSeriesFeatureEngineer,
    feature_names_for,
)

ENGINEER = TimeSeriesFeatureEngineer()


@pytest.mark.parametrize("symbol", BUNDLED_SYMBOLS)
def test_every_bundled_symbol_gives_finite_float32_features(symbol: str) -> None:
    prices = load_bundled(symbol)
    features = ENGINEER.transform(prices)
    assert features.dtypes.eq(np.float32).all()
    assert np.isfinite(features.to_numpy()).all()
    assert features.index.equals(prices.index[ENGINEER.warmup :])
    assert list(features.columns) == ENGINEER.feature_names(prices)
    assert features.shape[1] >= 25


def test_ohlcv_columns_add_intraday_and_volume_features(ohlcv_prices: pd.DataFrame) -> None:
    full = ENGINEER.transform(ohlcv_prices)
    close_only = ENGINEER.transform(ohlcv_prices[["close"]])
    assert list(full.columns) == [*CLOSE_FEATURES, *OHLC_FEATURES, *VOLUME_FEATURES]
    assert list(close_only.columns) == list(CLOSE_FEATURES)
    shared = ["ret_1", "ema_ratio_60", "rsi_14", "macd_hist"]
    pd.testing.assert_frame_equal(full[shared], close_only[shared])


@pytest.mark.parametrize("end", [1200, 2500, 4300, None])  # 4300 is in the 2008 crash
@pytest.mark.parametrize("fixture", ["bundled_prices", "ohlcv_prices"])
def test_a_history_tail_gives_the_full_history_features(
    fixture: str, end: int | None, request: pytest.FixtureRequest
) -> None:
    """Serving featurises only ``history_rows(seq_len)`` rows; EMAs must have forgotten the
    different start to < 1e-4 standard deviations of each feature."""
    prices = request.getfixturevalue(fixture).iloc[:end]
    seq_len = 60
    full = ENGINEER.transform(prices)
    tail = ENGINEER.transform(prices.iloc[-ENGINEER.history_rows(seq_len) :])
    assert tail.index.equals(full.index[-seq_len:])
    scale = full.to_numpy(np.float64).std(axis=0)
    diff = np.abs(tail.to_numpy(np.float64) - full.iloc[-seq_len:].to_numpy(np.float64))
    assert (diff / scale).max() < 1e-4


def test_features_never_look_ahead(bundled_prices: pd.DataFrame) -> None:
    cut = 3000
    changed = bundled_prices.copy()
    changed.iloc[cut:, 0] *= np.exp(np.random.default_rng(0).normal(0, 0.05, len(changed) - cut))
    before = ENGINEER.transform(bundled_prices).loc[: bundled_prices.index[cut - 1]]
    after = ENGINEER.transform(changed).loc[: bundled_prices.index[cut - 1]]
    pd.testing.assert_frame_equal(before, after)


def test_ohlcv_features_never_look_ahead(ohlcv_prices: pd.DataFrame) -> None:
    cut = 3000
    changed = ohlcv_prices.copy()
    shock = np.exp(np.random.default_rng(1).normal(0, 0.05, (len(changed) - cut, 1)))
    changed.iloc[cut:] = changed.iloc[cut:].to_numpy() * shock  # every column, bars stay valid
    before = ENGINEER.transform(ohlcv_prices).loc[: ohlcv_prices.index[cut - 1]]
    after = ENGINEER.transform(changed).loc[: ohlcv_prices.index[cut - 1]]
    pd.testing.assert_frame_equal(before, after)
    assert (
        not ENGINEER.transform(ohlcv_prices).iloc[-1].equals(ENGINEER.transform(changed).iloc[-1])
    )


def test_range_volatilities_follow_their_textbook_formulas(ohlcv_prices: pd.DataFrame) -> None:
    """Garman-Klass (1980) and Rogers-Satchell (1991), written out bar by bar."""
    features = ENGINEER.transform(ohlcv_prices)
    bars = ohlcv_prices[["open", "high", "low", "close"]].to_numpy()
    for row in (ENGINEER.warmup, 2000, len(bars) - 1):
        for n in (5, 20, 60):
            total = 0.0
            for o, h, lo, c in bars[row - n + 1 : row + 1]:
                total += 0.5 * math.log(h / lo) ** 2 - (2 * math.log(2) - 1) * math.log(c / o) ** 2
            expected = math.sqrt(total / n)
            assert features[f"gk_vol_{n}"].iloc[row - ENGINEER.warmup] == pytest.approx(
                expected, rel=1e-5
            )
        rs = sum(
            math.log(h / c) * math.log(h / o) + math.log(lo / c) * math.log(lo / o)
            for o, h, lo, c in bars[row - 19 : row + 1]
        )
        got = features["rs_vol_20"].iloc[row - ENGINEER.warmup]
        assert got == pytest.approx(math.sqrt(rs / 20), rel=1e-5)


def test_features_do_not_depend_on_price_or_volume_level(ohlcv_prices: pd.DataFrame) -> None:
    prices = ohlcv_prices.iloc[-1500:]
    scaled = prices * 1000.0
    pd.testing.assert_frame_equal(
        ENGINEER.transform(prices), ENGINEER.transform(scaled), rtol=1e-4, atol=1e-5
    )


def test_zero_or_missing_volume_is_handled(ohlcv_prices: pd.DataFrame) -> None:
    prices = ohlcv_prices.iloc[-1000:].copy()
    prices.iloc[100:130, prices.columns.get_loc("volume")] = 0.0  # a stretch without volume
    assert np.isfinite(ENGINEER.transform(prices).to_numpy()).all()

    prices["volume"] = 0.0
    assert ENGINEER.resolve(prices).use_volume is False
    assert "volume_z_20" not in ENGINEER.transform(prices).columns
    forced = TimeSeriesFeatureEngineer(use_ohlc=True, use_volume=True).transform(prices)
    assert (forced[list(VOLUME_FEATURES)] == 0.0).all().all()  # neutral, not NaN


def test_stored_config_rebuilds_the_same_engineer(ohlcv_prices: pd.DataFrame) -> None:
    engineer = ENGINEER.resolve(ohlcv_prices)
    config = json.loads(json.dumps(engineer.to_dict()))
    rebuilt = TimeSeriesFeatureEngineer.from_dict(config)
    assert rebuilt.feature_names() == feature_names_for(True, True) == config["feature_names"]
    tail = ohlcv_prices.iloc[-600:]
    pd.testing.assert_frame_equal(rebuilt.transform(tail), engineer.transform(tail))

    with pytest.raises(ValueError, match="retrain"):
        TimeSeriesFeatureEngineer.from_dict({**config, "feature_names": ["ret_1"]})
    with pytest.raises(ValueError, match="resolve"):
        ENGINEER.to_dict()


def test_a_stored_ohlcv_engineer_rejects_close_only_prices(ohlcv_prices: pd.DataFrame) -> None:
    engineer = ENGINEER.resolve(ohlcv_prices)
    with pytest.raises(ValueError, match="lacks"):
        engineer.transform(ohlcv_prices[["close"]])


def test_bad_prices_raise_clear_errors(bundled_prices: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="more than warmup"):
        ENGINEER.transform(bundled_prices.iloc[: ENGINEER.warmup])
    broken = bundled_prices.copy()
    broken.iloc[700, 0] = -1.0
    with pytest.raises(ValueError, match="non-positive or missing"):
        ENGINEER.transform(broken)
