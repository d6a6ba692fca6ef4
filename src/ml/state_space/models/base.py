"""The one interface every forecaster shares, the neural models and the baselines alike.

A forecaster is fitted on a price history and then asked for quantiles of the forward
log return ``log(close[t + h] / close[t])`` at chosen *origins* ``t``. The backtest,
the training-time evaluation and the service all talk to forecasters through this
protocol, so a baseline is never a special case.

Contract, checked for every implementation by ``tests/models/test_contract.py``:

- ``fit(prices)`` may use every row of ``prices``; the caller cuts the history (and
  leaves the embargo) before calling it.
- ``predict_quantiles(prices, origins)`` gets a history that contains every origin and
  may extend past them; the forecast for origin ``t`` uses rows ``<= t`` only.
- The result is a float array of shape (n_origins, n_horizons, n_quantiles), finite and
  non-decreasing along the quantile axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, Self, runtime_checkable

import numpy as np
import pandas as pd

DEFAULT_HORIZONS: tuple[int, ...] = (1, 5, 10, 30)
DEFAULT_QUANTILES: tuple[float, ...] = (0.1, 0.5, 0.9)
VOLATILITY_WINDOW = 60  # trading days behind the volatility band of the random walk
VOLATILITY_FLOOR = 1e-4  # daily; keeps a flat stretch of prices from dividing by zero


@runtime_checkable
class Forecaster(Protocol):
    """Fit on history; predict return quantiles at given origins."""

    name: str
    horizons: tuple[int, ...]
    quantiles: tuple[float, ...]

    def fit(self, prices: pd.DataFrame) -> Self: ...

    def predict_quantiles(self, prices: pd.DataFrame, origins: pd.DatetimeIndex) -> np.ndarray:
        """(n_origins, n_horizons, n_quantiles) log-return quantiles."""
        ...


def origin_positions(index: pd.DatetimeIndex, origins: pd.DatetimeIndex) -> np.ndarray:
    """Row positions of ``origins`` in ``index``; every origin must be a row of the history."""
    positions = index.get_indexer(origins)
    if (positions < 0).any():
        missing = origins[positions < 0]
        raise ValueError(
            f"{len(missing)} origin(s) are not dates of the price history (first: "
            f"{missing[0].date()}); forecast only from dates that have a close"
        )
    return positions


def daily_log_returns(prices: pd.DataFrame) -> np.ndarray:
    """``log(close[t] / close[t-1])`` with NaN at row 0, float64 (T,)."""
    log_close = np.log(prices["close"].to_numpy(dtype=np.float64))
    return np.concatenate([[np.nan], np.diff(log_close)])


def trailing_volatility(prices: pd.DataFrame, window: int = VOLATILITY_WINDOW) -> np.ndarray:
    """Std (ddof=1) of the last ``window`` daily log returns ending at each row (T,).

    Row ``t`` uses returns ``t - window + 1 .. t``, i.e. closes up to ``t``: known at the
    origin. NaN until ``window`` returns exist.
    """
    returns = pd.Series(daily_log_returns(prices))
    return returns.rolling(window, min_periods=window).std(ddof=1).to_numpy()


def origin_volatility(prices: pd.DataFrame, positions: np.ndarray, window: int) -> np.ndarray:
    """Trailing ``window``-day volatility at each origin row (n,); ValueError if undefined."""
    sigma = trailing_volatility(prices.iloc[: positions.max(initial=0) + 1], window)[positions]
    if np.isnan(sigma).any():
        first = int(positions[np.isnan(sigma)][0])
        raise ValueError(
            f"origin {prices.index[first].date()} has {first + 1} rows of history up to it, "
            f"but the {window}-day volatility needs {window + 1}; "
            "start the origins later or pass a longer history"
        )
    return sigma


def horizon_volatility(
    prices: pd.DataFrame,
    positions: np.ndarray,
    horizons: Sequence[int],
    window: int = VOLATILITY_WINDOW,
    floor: float = VOLATILITY_FLOOR,
) -> np.ndarray:
    """``max(sigma_window(t), floor) * sqrt(h)`` at each origin row and horizon (n, H): the
    random walk's h-day standard deviation, known at the origin."""
    sigma = np.maximum(origin_volatility(prices, positions, window), floor)
    return sigma[:, None] * np.sqrt(np.asarray(horizons, dtype=np.float64))[None, :]


def forward_log_returns(prices: pd.DataFrame, horizon: int) -> np.ndarray:
    """``log(close[t + h] / close[t])`` per row, NaN where ``t + h`` is past the end (T,)."""
    log_close = np.log(prices["close"].to_numpy(dtype=np.float64))
    out = np.full_like(log_close, np.nan)
    out[:-horizon] = log_close[horizon:] - log_close[:-horizon]
    return out
