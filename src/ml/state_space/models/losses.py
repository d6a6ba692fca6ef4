"""Quantile (pinball) loss with an optional Huber term on the median, and a median-MAE metric.

Shapes: ``y_true`` (batch, n_horizons) scaled forward log returns; ``y_pred``
(batch, n_horizons, n_quantiles) predicted quantiles of those returns. A network
supervised at its last K steps adds a step axis after the batch: (batch, K, n_horizons)
and (batch, K, n_horizons, n_quantiles); every loss is then the mean over the steps too.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

PACKAGE = "ml.state_space"


def _check_quantiles(quantiles: Sequence[float]) -> tuple[float, ...]:
    qs = tuple(float(q) for q in quantiles)
    if not qs or any(not 0.0 < q < 1.0 for q in qs) or list(qs) != sorted(set(qs)):
        raise ValueError(
            f"quantiles must be strictly increasing values in (0, 1), got {quantiles!r}."
        )
    return qs


def median_index(quantiles: Sequence[float]) -> int:
    """Index of the quantile closest to 0.5 (the point forecast)."""
    qs = _check_quantiles(quantiles)
    return min(range(len(qs)), key=lambda i: abs(qs[i] - 0.5))


@keras.saving.register_keras_serializable(package=PACKAGE)
def pinball_loss(y_true, y_pred, quantiles: Sequence[float]):
    """Mean pinball loss over (steps,) horizons and quantiles, per sample: (batch,)."""
    q = ops.convert_to_tensor(_check_quantiles(quantiles), dtype=y_pred.dtype)  # (Q,)
    err = ops.expand_dims(ops.cast(y_true, y_pred.dtype), -1) - y_pred  # (b, [K,] H, Q)
    return _mean_per_sample(ops.maximum(q * err, (q - 1.0) * err))  # (b,)


def _mean_per_sample(values):
    """Mean over every axis but the batch axis: (batch,)."""
    return ops.mean(values, axis=tuple(range(1, len(values.shape))))


@keras.saving.register_keras_serializable(package=PACKAGE)
class QuantileLoss(keras.losses.Loss):
    """Pinball loss + ``point_loss_weight`` * Huber(``huber_delta``) of the median forecast."""

    def __init__(
        self,
        quantiles: Sequence[float] = (0.1, 0.5, 0.9),
        point_loss_weight: float = 0.0,
        huber_delta: float = 1.0,
        name: str = "quantile_loss",
        **kwargs,
    ) -> None:
        super().__init__(name=name, **kwargs)
        self.quantiles = _check_quantiles(quantiles)
        self.median_index = median_index(self.quantiles)
        self.point_loss_weight = float(point_loss_weight)
        self.huber_delta = float(huber_delta)

    def call(self, y_true, y_pred):
        loss = pinball_loss(y_true, y_pred, self.quantiles)  # (b,)
        if self.point_loss_weight:
            median = y_pred[..., self.median_index]  # (b, [K,] H)
            err = ops.abs(ops.cast(y_true, y_pred.dtype) - median)  # (b, [K,] H)
            quad = ops.minimum(err, self.huber_delta)
            huber = 0.5 * ops.square(quad) + self.huber_delta * (err - quad)  # (b, [K,] H)
            loss = loss + self.point_loss_weight * _mean_per_sample(huber)  # (b,)
        return loss

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "quantiles": list(self.quantiles),
            "point_loss_weight": self.point_loss_weight,
            "huber_delta": self.huber_delta,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class MedianAbsoluteError(keras.metrics.MeanMetricWrapper):
    """Mean absolute error of the median quantile (the point forecast)."""

    def __init__(self, median_index: int, name: str = "median_mae", dtype=None) -> None:
        super().__init__(fn=self._error, name=name, dtype=dtype)
        self.median_index = median_index

    def _error(self, y_true, y_pred):
        err = ops.cast(y_true, y_pred.dtype) - y_pred[..., self.median_index]  # (b, [K,] H)
        return _mean_per_sample(ops.abs(err))  # (b,)

    def get_config(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "median_index": self.median_index}
