"""Indicators reproduce TA-Lib on real bundled prices, from TA-Lib's first valid value on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.state_space.data.sources import load_bundled
from ml.state_space.data.universe import BUNDLED_SYMBOLS
from ml.state_space.features import indicators as ind

talib = pytest.importorskip("talib")

RTOL = 1e-9


def assert_matches_talib(ours: pd.Series, theirs: np.ndarray, close: np.ndarray) -> None:
    """Same warm-up (NaN) pattern and equal values; ``atol`` scales with the price level
    because MACD lines cross zero."""
    ours_values = ours.to_numpy()
    np.testing.assert_array_equal(np.isnan(ours_values), np.isnan(theirs))
    valid = ~np.isnan(theirs)
    np.testing.assert_allclose(
        ours_values[valid], theirs[valid], rtol=RTOL, atol=1e-10 * close.max()
    )


@pytest.fixture(scope="module", params=BUNDLED_SYMBOLS)
def close(request: pytest.FixtureRequest) -> pd.Series:
    return load_bundled(request.param)["close"]


@pytest.mark.parametrize("n", [5, 20, 60])
def test_sma_and_ema_match_talib(close: pd.Series, n: int) -> None:
    x = close.to_numpy()
    assert_matches_talib(ind.sma(close, n), talib.SMA(x, n), x)
    assert_matches_talib(ind.ema(close, n), talib.EMA(x, n), x)


@pytest.mark.parametrize("n", [7, 14])
def test_rsi_matches_talib(close: pd.Series, n: int) -> None:
    x = close.to_numpy()
    assert_matches_talib(ind.rsi(close, n), talib.RSI(x, n), x)


@pytest.mark.parametrize("periods", [(12, 26, 9), (5, 35, 5)])
def test_macd_matches_talib_including_its_fast_ema_alignment(
    close: pd.Series, periods: tuple[int, int, int]
) -> None:
    x = close.to_numpy()
    for ours, theirs in zip(ind.macd(close, *periods), talib.MACD(x, *periods), strict=True):
        assert_matches_talib(ours, theirs, x)


@pytest.mark.parametrize(("n", "k"), [(20, 2.0), (10, 1.5)])
def test_bollinger_matches_talib(close: pd.Series, n: int, k: float) -> None:
    x = close.to_numpy()
    upper, mid, lower = talib.BBANDS(x, n, k, k)
    for ours, theirs in zip(ind.bollinger(close, n, k), (mid, upper, lower), strict=True):
        assert_matches_talib(ours, theirs, x)


def test_leading_nans_are_skipped_like_talib() -> None:
    close = load_bundled("KO")["close"].iloc[:300].copy()
    close.iloc[:7] = np.nan
    x = close.to_numpy()
    assert_matches_talib(ind.ema(close, 10), talib.EMA(x, 10), np.nan_to_num(x))
    assert_matches_talib(ind.rsi(close), talib.RSI(x), np.nan_to_num(x))
    for ours, theirs in zip(ind.macd(close), talib.MACD(x), strict=True):
        assert_matches_talib(ours, theirs, np.nan_to_num(x))


def test_rolling_std_of_a_constant_window_is_exactly_zero() -> None:
    series = pd.Series([5.0, 3.045, 3.045, 3.045, 3.045])
    assert ind.rolling_std(series, 4).iloc[-1] == 0.0


@pytest.mark.parametrize("n", [0, -3, 2.5])
def test_invalid_period_is_rejected(n: int) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        ind.ema(pd.Series([1.0, 2.0, 3.0]), n)


def test_rsi_of_a_flat_history_is_zero_like_talib() -> None:
    flat = pd.Series(np.full(40, 3.045))
    np.testing.assert_array_equal(ind.rsi(flat).to_numpy()[14:], talib.RSI(flat.to_numpy())[14:])
    assert (ind.rsi(flat).iloc[14:] == 0.0).all()
