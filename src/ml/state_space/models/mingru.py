"""The MinGRU peer: the minimal GRU trained with a parallel scan, the recurrent model this
design was first compared with, on the Mamba forecaster's pipeline.

Two stacked ``MinGRU(64)`` layers replace the Mamba blocks, as the LSTM peer's two
``LSTM(64)`` do; the input pipeline, quantile head, loss and optimiser are the Mamba
forecaster's (``models.lstm`` explains which ``MambaConfig`` fields apply).
"""

from __future__ import annotations

import keras

from ml.state_space.models.heads import compile_model, quantile_head, window_inputs
from ml.state_space.models.mamba.layers import MinGRU
from ml.state_space.models.mamba.model import MambaConfig, check_output_steps
from ml.state_space.models.neural import NeuralForecaster

MINGRU_UNITS = 64
MINGRU_LAYERS = 2


def build_mingru(config: MambaConfig, n_features: int, output_steps: int = 1) -> keras.Model:
    """(batch, seq_len, n_features) -> (batch, H, Q) through 2 x MinGRU(64); ``output_steps``
    K > 1: (batch, K, H, Q) at the last K steps (the training network, same weights)."""
    check_output_steps(output_steps, config.seq_len)
    inputs, h = window_inputs(config, n_features)  # (b, L, F)
    for i in range(MINGRU_LAYERS):
        last_step_only = i == MINGRU_LAYERS - 1 and output_steps == 1
        h = MinGRU(MINGRU_UNITS, return_sequences=not last_step_only, name=f"mingru_{i}")(h)
    if output_steps > 1:
        h = keras.layers.Cropping1D((config.seq_len - output_steps, 0), name="last_steps")(h)
    return keras.Model(inputs, quantile_head(h, config), name="mingru_forecaster")


class MinGRUForecaster(NeuralForecaster):
    """Per-symbol (or, pooled, universe) 2 x MinGRU(64) quantile forecaster."""

    family = "mingru"

    def build_network(self, n_features: int, output_steps: int = 1) -> keras.Model:
        network = build_mingru(self.config.model, n_features, output_steps)
        return compile_model(network, self.config.model)
