"""What every neural forecaster shares after its sequence encoder: the quantile head and
the compile step (optimiser, quantile loss, median-MAE metric)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import keras

from ml.state_space.models.losses import MedianAbsoluteError, QuantileLoss
from ml.state_space.models.mamba.layers import MonotoneQuantiles

if TYPE_CHECKING:
    from ml.state_space.models.mamba.model import MambaConfig


def quantile_head(features, config: MambaConfig):
    """(batch, d) features -> (batch, n_horizons, n_quantiles) non-crossing quantiles."""
    x = keras.layers.Dropout(config.dropout, name="head_dropout")(features)  # (b, d)
    raw = keras.layers.Dense(config.n_horizons * config.n_quantiles, name="head")(x)  # (b, H*Q)
    raw = keras.layers.Reshape((config.n_horizons, config.n_quantiles), name="head_grid")(raw)
    return MonotoneQuantiles(config.median_index, name="quantiles")(raw)  # (b, H, Q)


def compile_model(
    model: keras.Model, config: MambaConfig, jit_compile: bool | Literal["auto"] | None = None
) -> keras.Model:
    """AdamW with gradient clipping, quantile loss, median-MAE metric.

    ``jit_compile`` defaults to the config's (XLA for the Mamba model); pass ``"auto"`` for
    networks that XLA does not help on CPU (the LSTM).
    """
    model.compile(
        optimizer=keras.optimizers.AdamW(
            learning_rate=config.learning_rate,
            weight_decay=config.weight_decay,
            clipnorm=config.clipnorm,
        ),
        loss=QuantileLoss(config.quantiles, config.point_loss_weight, config.huber_delta),
        metrics=[MedianAbsoluteError(config.median_index)],
        jit_compile=config.jit_compile if jit_compile is None else jit_compile,
    )
    return model
