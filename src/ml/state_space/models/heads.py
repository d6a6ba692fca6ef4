"""What every neural forecaster shares around its sequence encoder: the input window (and
its optional per-window standardisation), the quantile head and the compile step
(optimiser, quantile loss, median-MAE metric)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

import keras

from ml.state_space.models.losses import MedianAbsoluteError, QuantileLoss
from ml.state_space.models.mamba.layers import MonotoneQuantiles, WindowStandardization

RECURRENT_UNITS, RECURRENT_LAYERS = 64, 2  # the recurrent peers: 2 x 64 units


class HeadConfig(Protocol):
    """What the head and the compile step read of a network's config (``MambaConfig``,
    which the LSTM shares)."""

    dropout: float
    n_horizons: int
    n_quantiles: int
    median_index: int
    quantiles: tuple[float, ...]
    learning_rate: float
    weight_decay: float
    clipnorm: float
    point_loss_weight: float
    huber_delta: float
    jit_compile: bool


class InputConfig(Protocol):
    """What the input layers read of a network's config."""

    seq_len: int
    window_norm_rows: int


def window_inputs(config: InputConfig, n_features: int):
    """The network's input (batch, seq_len, n_features) and what the encoder reads of it:
    the window itself, or, with ``config.window_norm_rows``, the window standardised on
    its own (:class:`WindowStandardization`)."""
    inputs = keras.Input((config.seq_len, n_features), name="window")
    if not config.window_norm_rows:
        return inputs, inputs
    return inputs, WindowStandardization(config.window_norm_rows, name="window_norm")(inputs)


class RecurrentConfig(InputConfig, HeadConfig, Protocol):
    """What a stack of recurrent layers reads of a network's config."""


def recurrent_network(
    config: RecurrentConfig,
    n_features: int,
    output_steps: int,
    layer: Callable[[int, bool, str], keras.layers.Layer],
    name: str,
) -> keras.Model:
    """(batch, seq_len, n_features) -> (batch, H, Q) through ``RECURRENT_LAYERS`` stacked
    recurrent layers of ``RECURRENT_UNITS``, ``layer(units, return_sequences, name)`` making
    each (the LSTM and MinGRU peers); ``output_steps`` K > 1: (batch, K, H, Q) at the last K
    steps (the training network, same weights)."""
    inputs, h = window_inputs(config, n_features)  # (b, L, F)
    for i in range(RECURRENT_LAYERS):
        last_step_only = i == RECURRENT_LAYERS - 1 and output_steps == 1
        h = layer(RECURRENT_UNITS, not last_step_only, f"{name}_{i}")(h)
    if output_steps > 1:
        h = keras.layers.Cropping1D((config.seq_len - output_steps, 0), name="last_steps")(h)
    return keras.Model(inputs, quantile_head(h, config), name=f"{name}_forecaster")


def quantile_head(features, config: HeadConfig):
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
    model: keras.Model, config: HeadConfig, jit_compile: bool | Literal["auto"] | None = None
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
