"""GARCH(1,1) with Student-t errors: the volatility baseline a neural model must beat.

The parameters are fitted once per symbol with the ``arch`` package; forecasts at any
later origin filter the conditional variance through the returns up to that origin with
those parameters (no refit), so predicting a whole test year costs one vectorised pass.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from numbers import Integral
from typing import Any, Self

import numpy as np
import pandas as pd
from arch import arch_model
from scipy.signal import lfilter
from scipy.stats import norm
from scipy.stats import t as student_t

from ml.state_space.data.quality import check_price_frame
from ml.state_space.models.base import (
    DEFAULT_HORIZONS,
    DEFAULT_QUANTILES,
    daily_log_returns,
    forward_log_returns,
)
from ml.state_space.models.baselines import Baseline, WithDrift, require_fitted

__all__ = [
    "DriftGarch",
    "DriftGarchFHS",
    "Garch",
    "GarchParams",
    "horizon_variance",
    "one_step_variance",
]

logger = logging.getLogger(__name__)

SCALE = 100.0  # the model is fitted on percent returns: the optimiser needs O(1) numbers
MIN_FIT_RETURNS = 250  # about a year of daily returns


@dataclass(frozen=True)
class GarchParams:
    """Fitted GARCH(1,1)-t parameters, in percent-return units.

    ``sigma2[t+1] = omega + alpha * (r[t] - mu)**2 + beta * sigma2[t]``; ``backcast`` is
    the variance the recursion starts from (``arch``'s backcast of the fitted history).
    """

    mu: float
    omega: float
    alpha: float
    beta: float
    nu: float
    backcast: float


def one_step_variance(returns: np.ndarray, params: GarchParams) -> np.ndarray:
    """Variance of the next return given rows ``<= t``, for each row ``t`` (T,).

    ``returns`` are percent daily log returns with NaN at row 0 (``daily_log_returns``).
    Row 0 starts from ``params.backcast``, as ``arch`` starts its recursion.
    """
    p = params
    shocks = p.omega + p.alpha * (returns[1:] - p.mu) ** 2
    drive = np.concatenate([[p.omega + (p.alpha + p.beta) * p.backcast], shocks])
    return lfilter([1.0], [1.0, -p.beta], drive)


def horizon_variance(
    next_variance: np.ndarray, params: GarchParams, horizons: Sequence[int]
) -> np.ndarray:
    """Variance of the ``h``-day return: the sum of the 1..h step forecasts (n, H).

    The k-step forecast is ``omega * (1 + phi + ... + phi**(k-2)) + phi**(k-1) * s1`` with
    ``phi = alpha + beta`` and ``s1`` the one-step variance (``arch``'s analytic forecast).
    """
    phi = params.alpha + params.beta
    geometric = np.concatenate([[0.0], np.cumsum(phi ** np.arange(max(horizons)))])  # S_0..S_H
    intercept = np.cumsum(geometric[:-1])  # sum_{k=1..h} S_{k-1}, at index h - 1
    steps = np.asarray(horizons)
    return params.omega * intercept[steps - 1] + next_variance[:, None] * geometric[steps]


def fit_garch(returns: np.ndarray) -> GarchParams:
    """Fit a constant-mean GARCH(1,1)-t to percent daily log returns (no NaN)."""
    model = arch_model(returns, mean="Constant", vol="GARCH", p=1, q=1, dist="t", rescale=False)
    result = model.fit(disp="off", show_warning=False)
    values = result.params[["mu", "omega", "alpha[1]", "beta[1]", "nu"]].to_numpy(dtype=float)
    if not np.isfinite(values).all():
        raise RuntimeError(
            f"GARCH fit on {len(returns)} returns failed "
            f"({result.optimization_result.message}): params {result.params.to_dict()}"
        )
    if result.convergence_flag:
        logger.warning(
            "GARCH optimiser did not converge (%s); using its finite params %s",
            result.optimization_result.message,
            result.params.to_dict(),
        )
    backcast = model.volatility.backcast(returns - returns.mean())  # arch's own start value
    return GarchParams(*(float(v) for v in values), backcast=float(backcast))


class Garch(Baseline):
    """GARCH(1,1) volatility with Student-t errors; median 0.

    Fitted with ``arch`` on 100 x daily log returns (constant mean). At an origin ``t`` the
    conditional variance is filtered through the returns up to ``t`` with the fitted
    parameters, and the ``h``-day variance is the sum of the 1..h step-ahead forecasts.
    Quantiles are ``0 + z * sqrt(variance)``: for ``h = 1`` ``z`` is the quantile of the
    fitted standardised Student-t, ``t.ppf(q, nu) * sqrt((nu - 2) / nu)``; for ``h > 1``
    it is the normal quantile, since a sum of ``h`` independent t shocks is close to normal.
    The fitted mean only centres the residuals; the median forecast is no change.

    ``window`` fits on the last ``window`` daily returns of the history (all when None).
    The recursion on ``predict_quantiles``' prices starts from the fitted backcast, so
    origins in the first ~100 rows of those prices lean on it.
    """

    name = "garch"

    def __init__(
        self,
        horizons: Sequence[int] = DEFAULT_HORIZONS,
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
        window: int | None = None,
    ) -> None:
        super().__init__(horizons, quantiles)
        if window is not None and (
            not isinstance(window, Integral) or isinstance(window, bool) or window < MIN_FIT_RETURNS
        ):
            raise ValueError(
                f"window must be None (all history) or an integer >= {MIN_FIT_RETURNS} "
                f"daily returns, got {window!r}"
            )
        self.window = window
        self.params_: GarchParams | None = None

    def fit(self, prices: pd.DataFrame) -> Self:
        """Fit the GARCH parameters on (the last ``window`` returns of) ``prices``."""
        check_price_frame(prices, "prices")
        returns = SCALE * daily_log_returns(self._fitted_rows(prices))[1:]
        if len(returns) < MIN_FIT_RETURNS:
            raise ValueError(
                f"GARCH needs at least {MIN_FIT_RETURNS} daily returns to fit, got "
                f"{len(returns)} ({len(prices)} rows); fit on a longer history"
            )
        started = time.perf_counter()
        self.params_ = fit_garch(returns)
        logger.debug(
            "GARCH fitted on %d returns in %.2f s: %s",
            len(returns),
            time.perf_counter() - started,
            self.params_,
        )
        return self

    def predict_quantiles(self, prices: pd.DataFrame, origins: pd.DatetimeIndex) -> np.ndarray:
        """(n_origins, n_horizons, n_quantiles) log-return quantiles."""
        params = require_fitted(self.params_, self.name)
        positions = self._positions(prices, origins)
        history = prices.iloc[: positions.max(initial=0) + 1]  # rows up to the last origin
        next_variance = one_step_variance(SCALE * daily_log_returns(history), params)
        scale = np.sqrt(horizon_variance(next_variance[positions], params, self.horizons))
        return (scale / SCALE)[:, :, None] * self._standard_quantiles(params.nu)[None]

    def _fitted_rows(self, prices: pd.DataFrame) -> pd.DataFrame:
        """The price rows the parameters are fitted on (the last ``window`` returns)."""
        return prices if self.window is None else prices.iloc[-self.window - 1 :]

    def to_dict(self) -> dict[str, Any]:
        """The fitted state, JSON-serialisable (a model card stores it)."""
        return {"window": self.window, "params": asdict(require_fitted(self.params_, self.name))}

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], horizons: Sequence[int], quantiles: Sequence[float]
    ) -> Self:
        """A fitted forecaster from :meth:`to_dict`'s state."""
        fitted = cls(horizons, quantiles, window=data["window"])
        fitted.params_ = GarchParams(**data["params"])
        return fitted

    def _standard_quantiles(self, nu: float) -> np.ndarray:
        """(H, Q) quantiles of the unit-variance shock sum: Student-t at h = 1, else normal."""
        z = np.tile(norm.ppf(self.quantiles), (len(self.horizons), 1))
        t_quantiles = student_t.ppf(self.quantiles, nu) * np.sqrt((nu - 2.0) / nu)
        z[np.asarray(self.horizons) == 1] = t_quantiles
        return z


class DriftGarch(WithDrift, Garch):
    """The GARCH band around the drift: median = the mean training ``h``-day log return.

    The two baselines that beat the random walk most often over 2008-2022 combined: the
    drift's median (equity prices rise) and GARCH's band (volatility clusters).
    """

    name = "drift-garch"


class DriftGarchFHS(DriftGarch):
    """:class:`DriftGarch` with the band's shape learnt from the history (filtered
    historical simulation, Barone-Adesi et al. 1999).

    The quantiles are ``drift + sigma_h(t) * z_q(h)`` where ``z_q(h)`` is the empirical
    ``q``-quantile of the standardised training ``h``-day returns ``(r_h - drift) /
    sigma_h``, ``sigma_h`` GARCH's h-day std at each training origin: a variance mixture
    has fatter tails and narrower central quantiles than the normal with the same variance,
    and equity returns are skewed; the empirical table has both.
    """

    name = "drift-garch-fhs"
    shock_quantiles_: np.ndarray | None = None  # (H, Q) z_q(h), set by fit

    def fit(self, prices: pd.DataFrame) -> Self:
        """Fit GARCH and the drift, then the standardised quantiles on the same rows."""
        super().fit(prices)
        params, drift = self.params_, self.drift_
        rows = self._fitted_rows(prices)
        next_variance = one_step_variance(SCALE * daily_log_returns(rows), params)
        scale = np.sqrt(horizon_variance(next_variance, params, self.horizons)) / SCALE
        table = []
        for h, horizon in enumerate(self.horizons):
            standardised = (forward_log_returns(rows, horizon) - drift[h]) / scale[:, h]
            table.append(np.quantile(standardised[:-horizon], self.quantiles))
        self.shock_quantiles_ = np.array(table)
        return self

    def _standard_quantiles(self, nu: float) -> np.ndarray:
        return require_fitted(self.shock_quantiles_, self.name)

    def to_dict(self) -> dict[str, Any]:
        table = require_fitted(self.shock_quantiles_, self.name)
        return {**super().to_dict(), "shock_quantiles": table.tolist()}

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], horizons: Sequence[int], quantiles: Sequence[float]
    ) -> Self:
        fitted = super().from_dict(data, horizons, quantiles)
        fitted.shock_quantiles_ = np.asarray(data["shock_quantiles"], dtype=np.float64)
        if fitted.shock_quantiles_.shape != (len(fitted.horizons), len(fitted.quantiles)):
            raise ValueError("shock_quantiles do not match the horizons and quantiles")
        return fitted
