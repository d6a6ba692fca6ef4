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
    """(batch, [K,] d) features -> (batch, [K,] n_horizons, n_quantiles) non-crossing
    quantiles (K: the steps a network is supervised at)."""
    # A window's K steps share one mask, as in the blocks: XLA:CPU spent a tenth of the
    # training step drawing a (b, K, d) mask's Philox bits (docs/PERFORMANCE.md).
    noise = (None, 1, features.shape[-1]) if len(features.shape) == 3 else None
    x = keras.layers.Dropout(config.dropout, noise_shape=noise, name="head_dropout")(features)
    raw = keras.layers.Dense(config.n_horizons * config.n_quantiles, name="head")(x)
    grid = (*features.shape[1:-1], config.n_horizons, config.n_quantiles)
    raw = keras.layers.Reshape(grid, name="head_grid")(raw)  # (b, [K,] H, Q)
    return MonotoneQuantiles(config.median_index, name="quantiles")(raw)  # (b, [K,] H, Q)


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
