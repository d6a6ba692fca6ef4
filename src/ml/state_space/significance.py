"""The Diebold-Mariano test of equal predictive accuracy, with the small-sample
correction of Harvey, Leybourne and Newbold (1997).

For loss series ``a`` and ``b`` of two forecasts of the same targets, with
``d_t = a_t - b_t``::

    DM  = mean(d) / sqrt(V / n)
    V   = gamma_0 + 2 * sum_{k=1}^{h-1} gamma_k        (rectangular HAC, lag h-1)
    HLN = DM * sqrt((n + 1 - 2h + h(h-1)/n) / n)       compared with Student t(n-1)

``gamma_k`` is the autocovariance of ``d`` at lag k (divisor n). An h-step
forecast error is at most MA(h-1), hence the lag. The rectangular window can
give a negative V on short samples; then the Bartlett (Newey-West) weights,
which are always non-negative, are used instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class DMResult:
    """A negative statistic means the first forecast has the smaller loss."""

    statistic: float
    pvalue: float
    mean_difference: float
    n: int


def long_run_variance(d: np.ndarray, max_lag: int, *, bartlett: bool = False) -> float:
    """HAC variance of the mean-zero series ``d`` with lags up to ``max_lag``."""
    n = d.size
    centred = d - d.mean()
    variance = float(centred @ centred) / n
    for lag in range(1, min(max_lag, n - 1) + 1):
        weight = 1.0 - lag / (max_lag + 1) if bartlett else 1.0
        variance += 2.0 * weight * float(centred[lag:] @ centred[:-lag]) / n
    return variance


def diebold_mariano(loss_a: np.ndarray, loss_b: np.ndarray, horizon: int = 1) -> DMResult:
    """Two-sided HLN-corrected DM test that ``loss_a`` and ``loss_b`` have equal means.

    The losses must be in time order (the HAC variance uses their autocovariance).
    When the difference has no variance (identical forecasts), the statistic and
    p-value are NaN: there is nothing to test.
    """
    loss_a, loss_b = np.asarray(loss_a, dtype=float), np.asarray(loss_b, dtype=float)
    if loss_a.shape != loss_b.shape or loss_a.ndim != 1:
        raise ValueError(
            f"loss series must be 1-D and equal in length, got {loss_a.shape} and {loss_b.shape}"
        )
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    d = loss_a - loss_b
    n = d.size
    mean = float(d.mean()) if n else math.nan
    if n < 2:
        return DMResult(math.nan, math.nan, mean, n)
    variance = long_run_variance(d, horizon - 1)
    if variance <= 0.0:
        variance = long_run_variance(d, horizon - 1, bartlett=True)
    if not variance > 1e-300:
        return DMResult(math.nan, math.nan, mean, n)
    correction = (n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n
    statistic = mean / math.sqrt(variance / n) * math.sqrt(max(correction, 0.0))
    pvalue = float(2.0 * stats.t.sf(abs(statistic), df=n - 1))
    return DMResult(float(statistic), pvalue, mean, n)
