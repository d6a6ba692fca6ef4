"""Naive forecasters every model is scored against: random walk, drift, empirical quantiles.

Each implements :class:`~ml.state_space.models.base.Forecaster`, so the backtest and the
training-time evaluation treat them exactly like the neural models::

    RandomWalk().fit(history).predict_quantiles(prices, origins)  # (n, H, Q) log returns
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any, ClassVar, Self, TypeVar

import numpy as np
import pandas as pd
from scipy.stats import norm

from ml.state_space.data.quality import check_price_frame
from ml.state_space.models.base import (
    DEFAULT_HORIZONS,
    DEFAULT_QUANTILES,
    VOLATILITY_WINDOW,
    forward_log_returns,
    origin_positions,
    origin_volatility,
)

__all__ = [
    "Baseline",
    "Drift",
    "EmpiricalQuantiles",
    "RandomWalk",
    "WithDrift",
    "check_horizons",
    "check_quantiles",
    "mean_training_returns",
]

T = TypeVar("T")


def check_horizons(horizons: Sequence[int]) -> tuple[int, ...]:
    """``horizons`` as a tuple of positive, strictly increasing ints; ValueError otherwise."""
    values = tuple(horizons)
    valid = all(isinstance(h, Integral) and not isinstance(h, bool) and h >= 1 for h in values)
    if not values or not valid or list(values) != sorted(set(values)):
        raise ValueError(
            f"horizons must be positive integers in increasing order, got {horizons!r}; "
            f"pass e.g. {DEFAULT_HORIZONS}"
        )
    return tuple(int(h) for h in values)


def check_quantiles(quantiles: Sequence[float]) -> tuple[float, ...]:
    """``quantiles`` as a tuple of strictly increasing levels in (0, 1); ValueError otherwise."""
    values = tuple(quantiles)
    valid = all(isinstance(q, Real) and not isinstance(q, bool) and 0 < q < 1 for q in values)
    if not values or not valid or list(values) != sorted(set(values)):
        raise ValueError(
            f"quantiles must be increasing levels strictly between 0 and 1, got {quantiles!r}; "
            f"pass e.g. {DEFAULT_QUANTILES}"
        )
    return tuple(float(q) for q in values)


def require_fitted(value: T | None, model: str) -> T:
    """``value`` (a fitted attribute), or RuntimeError when ``fit`` has not run."""
    if value is None:
        raise RuntimeError(f"the {model!r} forecaster is not fitted; call fit(prices) first")
    return value


def training_returns(prices: pd.DataFrame, horizon: int) -> np.ndarray:
    """Every (overlapping) ``horizon``-day log return inside ``prices``; ValueError if none."""
    returns = forward_log_returns(prices, horizon)[:-horizon]
    if returns.size == 0:
        raise ValueError(
            f"{len(prices)} rows of price history hold no {horizon}-day return; "
            f"fit on at least {horizon + 1} rows"
        )
    return returns


def mean_training_returns(prices: pd.DataFrame, horizons: Sequence[int]) -> np.ndarray:
    """(H,) mean of all overlapping ``h``-day log returns in ``prices``: the drift."""
    return np.array([training_returns(prices, h).mean() for h in horizons])


class Baseline:
    """Validated ``horizons`` and ``quantiles`` plus the input checks all baselines share."""

    name: ClassVar[str]

    def __init__(
        self,
        horizons: Sequence[int] = DEFAULT_HORIZONS,
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
    ) -> None:
        self.horizons = check_horizons(horizons)
        self.quantiles = check_quantiles(quantiles)

    def _fitted_rows(self, prices: pd.DataFrame) -> pd.DataFrame:
        """The price rows ``fit`` learns from (a windowed baseline overrides it)."""
        return prices

    def _positions(self, prices: pd.DataFrame, origins: pd.DatetimeIndex) -> np.ndarray:
        """Rows of ``origins`` in a checked ``prices`` frame."""
        check_price_frame(prices, "prices")
        return origin_positions(prices.index, pd.DatetimeIndex(origins))


class RandomWalk(Baseline):
    """No-change median with a normal band: ``q = z_q * sigma_w(t) * sqrt(h)``.

    ``sigma_w(t)`` is the std of the ``window`` daily log returns up to the origin, so
    nothing is learnt in ``fit``; origins need ``window + 1`` rows of history.
    """

    name = "rw"

    def __init__(
        self,
        horizons: Sequence[int] = DEFAULT_HORIZONS,
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
        window: int = VOLATILITY_WINDOW,
    ) -> None:
        super().__init__(horizons, quantiles)
        if not isinstance(window, Integral) or isinstance(window, bool) or window < 2:
            raise ValueError(f"window must be an integer >= 2 (trading days), got {window!r}")
        self.window = int(window)

    def fit(self, prices: pd.DataFrame) -> Self:
        """Check ``prices``; there is nothing to learn."""
        check_price_frame(prices, "prices")
        return self

    def predict_quantiles(self, prices: pd.DataFrame, origins: pd.DatetimeIndex) -> np.ndarray:
        """(n_origins, n_horizons, n_quantiles) log-return quantiles."""
        positions = self._positions(prices, origins)
        sigma = origin_volatility(prices, positions, self.window)
        unit = np.sqrt(self.horizons)[:, None] * norm.ppf(self.quantiles)[None, :]
        return sigma[:, None, None] * unit[None]

    def to_dict(self) -> dict[str, Any]:
        """The (parameter-only) state, JSON-serialisable (a model card stores it)."""
        return {"window": self.window}

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], horizons: Sequence[int], quantiles: Sequence[float]
    ) -> Self:
        """The forecaster :meth:`to_dict` describes."""
        return cls(horizons, quantiles, window=data["window"])


class WithDrift:
    """Mixin before a baseline class: its quantiles shifted by the drift, the mean
    ``h``-day log return of the rows the baseline was fitted on."""

    drift_: np.ndarray | None = None  # (H,) mean training h-day log return, set by fit

    def fit(self, prices: pd.DataFrame) -> Self:
        """Fit the baseline, then learn the drift on the same rows."""
        super().fit(prices)
        self.drift_ = mean_training_returns(self._fitted_rows(prices), self.horizons)
        return self

    def predict_quantiles(self, prices: pd.DataFrame, origins: pd.DatetimeIndex) -> np.ndarray:
        """(n_origins, n_horizons, n_quantiles) log-return quantiles."""
        drift = require_fitted(self.drift_, self.name)
        return super().predict_quantiles(prices, origins) + drift[None, :, None]

    def to_dict(self) -> dict[str, Any]:
        """The fitted state, JSON-serialisable (a model card stores it)."""
        drift = require_fitted(self.drift_, self.name)
        return {**super().to_dict(), "drift": drift.tolist()}

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], horizons: Sequence[int], quantiles: Sequence[float]
    ) -> Self:
        """A fitted forecaster from :meth:`to_dict`'s state."""
        fitted = super().from_dict(data, horizons, quantiles)
        fitted.drift_ = np.asarray(data["drift"], dtype=np.float64)
        if fitted.drift_.shape != (len(fitted.horizons),):
            raise ValueError(f"drift {data['drift']} does not match horizons {horizons}")
        return fitted


class Drift(WithDrift, RandomWalk):
    """The random-walk band shifted by the mean training ``h``-day log return.

    The median is that mean; every other quantile is ``mean + z_q * sigma_w(t) * sqrt(h)``.
    """

    name = "drift"


class EmpiricalQuantiles(Baseline):
    """Unconditional quantiles of the training ``h``-day log returns, with a 0 median.

    Every level is the empirical quantile (``np.quantile``, linear interpolation) of all
    overlapping ``h``-day returns of the fitted history, except level 0.5, which is 0 (the
    no-change point forecast). When 0.5 is a level, the others are clipped to keep the
    quantiles monotone around it: lower levels to ``<= 0``, upper levels to ``>= 0``.
    The forecast is the same at every origin.
    """

    name = "empirical"

    def __init__(
        self,
        horizons: Sequence[int] = DEFAULT_HORIZONS,
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
    ) -> None:
        super().__init__(horizons, quantiles)
        self.table_: np.ndarray | None = None  # (H, Q) quantiles

    def fit(self, prices: pd.DataFrame) -> Self:
        """Learn the (H, Q) table of empirical quantiles from ``prices``."""
        check_price_frame(prices, "prices")
        levels = np.asarray(self.quantiles)
        table = np.stack([np.quantile(training_returns(prices, h), levels) for h in self.horizons])
        if 0.5 in self.quantiles:
            table[:, levels < 0.5] = np.minimum(table[:, levels < 0.5], 0.0)
            table[:, levels > 0.5] = np.maximum(table[:, levels > 0.5], 0.0)
            table[:, levels == 0.5] = 0.0
        self.table_ = table
        return self

    def predict_quantiles(self, prices: pd.DataFrame, origins: pd.DatetimeIndex) -> np.ndarray:
        """(n_origins, n_horizons, n_quantiles) log-return quantiles."""
        table = require_fitted(self.table_, self.name)
        positions = self._positions(prices, origins)
        return np.broadcast_to(table, (len(positions), *table.shape)).copy()
