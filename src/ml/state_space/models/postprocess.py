"""Post-fit corrections of a network's quantiles, fitted on the validation block.

Both work in units of the random walk's h-day standard deviation ``sigma_60(t) * sqrt(h)``
(``z`` units), where the random walk's quantiles are the constants ``z_q = Phi^-1(q)``.
The *baseline* is the forecaster's fallback (``models.fallback``) in those units, per origin:

- **blend**: per horizon, ``w * model + (1 - w) * baseline`` with the weight ``w`` in
  [0, 1] that minimises the mean pinball loss on validation, kept only if that blend beats
  the baseline on validation with a Diebold-Mariano p-value below ``BLEND_ALPHA``; else
  ``w = 0``, exactly the baseline: a network without demonstrated skill is not served.
A correction also holds per-quantile shifts (``QuantileCorrection.shifts``, zero): the
calibration that set them (conformal shifts to each level on validation) hurt on the
backtest and was removed (docs/EVALUATION.md, "Options removed").

Quantiles are sorted after the corrections, so they never cross, and
:func:`monotone_bands` keeps every band at least as wide as a shorter horizon's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import norm

from ml.state_space.significance import diebold_mariano

BLEND_GRID = np.linspace(0.0, 1.0, 21)
BLEND_ALPHA = 0.10


def random_walk_z(levels: Sequence[float]) -> np.ndarray:
    """The random walk's quantiles in z units: ``Phi^-1(q)`` per level (Q,)."""
    return norm.ppf(np.asarray(levels, dtype=np.float64))


@dataclass(frozen=True)
class QuantileCorrection:
    """Blend weights (H,) and quantile shifts (H, Q) in z units."""

    blend_weight: tuple[float, ...]
    shift: tuple[tuple[float, ...], ...]

    def apply(self, quantiles_z: np.ndarray, baseline_z: np.ndarray) -> np.ndarray:
        """(n, H, Q) network and baseline quantiles in z units -> corrected, non-crossing
        (n, H, Q)."""
        weight = np.asarray(self.blend_weight)[None, :, None]
        corrected = weight * quantiles_z + (1.0 - weight) * baseline_z
        corrected = corrected + np.asarray(self.shift)[None, :, :]
        return np.sort(corrected, axis=-1)

    @classmethod
    def fallback_only(cls, n_horizons: int, n_quantiles: int) -> QuantileCorrection:
        """The correction that serves the fallback alone at every horizon."""
        return cls((0.0,) * n_horizons, ((0.0,) * n_quantiles,) * n_horizons)

    def to_dict(self) -> dict[str, Any]:
        return {"blend_weight": list(self.blend_weight), "shift": [list(s) for s in self.shift]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuantileCorrection:
        return cls(
            tuple(float(w) for w in data["blend_weight"]),
            tuple(tuple(float(s) for s in row) for row in data["shift"]),
        )


def window_pinball(y: np.ndarray, quantiles: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Pinball loss of (n, Q) quantiles for (n,) outcomes, averaged over levels: (n,)."""
    error = y[:, None] - quantiles
    return np.mean(np.maximum(levels * error, (levels - 1.0) * error), axis=1)


def blend_weight(
    predicted: np.ndarray,
    outcome: np.ndarray,
    baseline: np.ndarray,
    levels: np.ndarray,
    horizon: int,
) -> float:
    """The pinball-optimal weight of the network's (n, Q) quantiles against the baseline's,
    or 0 when the blend does not beat the baseline significantly (``BLEND_ALPHA``)."""
    losses = [
        window_pinball(outcome, w * predicted + (1 - w) * baseline, levels) for w in BLEND_GRID
    ]
    best = int(np.argmin([loss.mean() for loss in losses]))
    test = diebold_mariano(losses[best], losses[0], horizon)  # losses[0]: the baseline
    significant = not np.isnan(test.pvalue) and test.pvalue < BLEND_ALPHA and test.statistic < 0
    return float(BLEND_GRID[best]) if significant else 0.0


#: One horizon's validation windows in z units, in time order: the model's (n, Q)
#: quantiles, the (n,) outcomes and the baseline's (n, Q) quantiles.
ValidationBlock = tuple[np.ndarray, np.ndarray, np.ndarray]


def fit_gate(
    blocks: Sequence[ValidationBlock | None], levels: Sequence[float], horizons: Sequence[int]
) -> QuantileCorrection:
    """The gate of every family (the networks' and LightGBM's): per horizon, the blend
    weight its validation block supports (:func:`blend_weight`); 0, the baseline alone,
    for a horizon with no block or an empty one."""
    levels_arr = np.asarray(levels, dtype=np.float64)
    weights = tuple(
        0.0 if block is None or len(block[1]) == 0 else blend_weight(*block, levels_arr, horizon)
        for block, horizon in zip(blocks, horizons, strict=True)
    )
    return QuantileCorrection(weights, ((0.0,) * len(levels_arr),) * len(weights))


def fit_correction(
    quantiles_z: np.ndarray,
    outcomes_z: np.ndarray,
    baseline_z: np.ndarray,
    levels: Sequence[float],
    horizons: Sequence[int],
) -> QuantileCorrection:
    """:func:`fit_gate` on validation forecasts of the network and the baseline (n, H, Q)
    and outcomes (n, H) at the same origins, z units, in time order (the blend's
    significance test needs it)."""
    blocks = [(quantiles_z[:, h], outcomes_z[:, h], baseline_z[:, h]) for h in range(len(horizons))]
    return fit_gate(blocks, levels, horizons)


def monotone_bands(
    quantiles: np.ndarray, levels: Sequence[float], horizons: Sequence[int]
) -> np.ndarray:
    """(n, H, Q) quantiles -> each quantile's distance from the median made non-decreasing
    in the horizon, so no band is narrower than a shorter horizon's.

    The uncertainty of an h-day return cannot shrink as h grows; a network's heads do
    not know that. NaN entries (a horizon without a forecast) are carried over.
    """
    levels_arr = np.asarray(levels, dtype=np.float64)
    middle = int(np.argmin(np.abs(levels_arr - 0.5)))  # the point forecast's column
    order = np.argsort(horizons)
    ordered = quantiles[:, order, :]
    median = ordered[:, :, middle][:, :, None]
    widest = np.fmax.accumulate(np.abs(ordered - median), axis=1)
    side = np.sign(levels_arr - levels_arr[middle])[None, None, :]
    widened = np.where(np.isnan(ordered), np.nan, median + side * widest)
    return widened[:, np.argsort(order), :]
