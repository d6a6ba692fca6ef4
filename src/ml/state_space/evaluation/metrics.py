"""Forecast metrics on a held-out window, always next to naive baselines.

Every number the model gets, the baselines get on the same windows:

- random walk: predict no change (a zero log return) at every horizon;
- drift: predict the mean training log return of that horizon;
- always-up: for directional accuracy, the share of windows that went up (both
  scored on the windows whose price moved).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def pinball(y_true: np.ndarray, y_pred: np.ndarray, quantile: float) -> float:
    """Mean pinball (quantile) loss of ``y_pred`` as the ``quantile`` forecast of ``y_true``."""
    error = y_true - y_pred
    return float(np.mean(np.maximum(quantile * error, (quantile - 1.0) * error)))


def _point_errors(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE and RMSE in float64: a forecast equal to the baseline scores exactly as it."""
    error = np.asarray(y_true, np.float64) - np.asarray(y_pred, np.float64)
    return {"mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error**2)))}


def _skill(model_mae: float, baseline_mae: float) -> float | None:
    return 1.0 - model_mae / baseline_mae if baseline_mae > 0 else None


def directional_accuracy(
    y_true: np.ndarray, y_pred: np.ndarray
) -> tuple[float | None, float | None]:
    """Share of windows whose direction the forecast got right, and the share an
    always-up forecast gets, both on the same windows: those whose price moved.

    A forecast of exactly no change says nothing about direction and scores half
    a hit (a coin flip), so the random walk scores 0.5.
    """
    moved = y_true != 0
    if not moved.any():
        return None, None
    truth, pred = np.sign(y_true[moved]), np.sign(y_pred[moved])
    hits = np.where(pred == 0, 0.5, (pred == truth).astype(float))
    return float(hits.mean()), float(np.mean(truth > 0))


def horizon_metrics(
    y_true: np.ndarray,
    quantile_pred: np.ndarray,
    quantiles: Sequence[float],
    train_drift: float,
) -> dict[str, Any]:
    """Metrics for one horizon.

    Args:
        y_true: realised log returns, shape (n,).
        quantile_pred: predicted quantiles of the log return, shape (n, n_quantiles).
        quantiles: the quantile levels, increasing, one of which is 0.5.
        train_drift: mean log return of this horizon on the training segment.
    """
    median = quantile_pred[:, list(quantiles).index(0.5)]
    model = _point_errors(y_true, median)
    random_walk = _point_errors(y_true, np.zeros_like(y_true))
    drift = _point_errors(y_true, np.full_like(y_true, train_drift))
    direction, always_up = directional_accuracy(y_true, median)
    return {
        "n": int(y_true.size),
        **model,
        "directional_accuracy": direction,
        "skill_vs_random_walk": _skill(model["mae"], random_walk["mae"]),
        "skill_vs_drift": _skill(model["mae"], drift["mae"]),
        "coverage": {
            f"{q:g}": float(np.mean(y_true <= quantile_pred[:, i])) for i, q in enumerate(quantiles)
        },
        "pinball": {
            f"{q:g}": pinball(y_true, quantile_pred[:, i], q) for i, q in enumerate(quantiles)
        },
        "interval_coverage": _interval_coverage(y_true, quantile_pred),
        "random_walk": {
            **random_walk,
            "pinball_median": pinball(y_true, np.zeros_like(y_true), 0.5),
        },
        "drift": {**drift, "value": float(train_drift)},
        "always_up_directional_accuracy": always_up,
    }


def _interval_coverage(y_true: np.ndarray, quantile_pred: np.ndarray) -> float:
    """Share of outcomes inside the outermost predicted quantiles."""
    lower, upper = quantile_pred[:, 0], quantile_pred[:, -1]
    return float(np.mean((y_true >= lower) & (y_true <= upper)))


def evaluate_forecasts(
    y_true: np.ndarray,
    quantile_pred: np.ndarray,
    horizons: Sequence[int],
    quantiles: Sequence[float],
    train_drift: Sequence[float],
) -> dict[str, dict[str, Any]]:
    """Per-horizon metrics keyed by ``"h<horizon>"``.

    Shapes: ``y_true (n, H)``, ``quantile_pred (n, H, Q)``, ``train_drift (H,)``.
    """
    if y_true.shape[0] == 0:
        raise ValueError("Cannot evaluate on an empty window set")
    return {
        f"h{horizon}": horizon_metrics(
            y_true[:, i], quantile_pred[:, i, :], quantiles, float(train_drift[i])
        )
        for i, horizon in enumerate(horizons)
    }
