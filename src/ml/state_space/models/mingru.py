"""The MinGRU peer: the minimal GRU trained with a parallel scan, the recurrent model this
design was first compared with, on the Mamba forecaster's pipeline.

Two stacked ``MinGRU(64)`` layers replace the Mamba blocks, as the LSTM peer's two
``LSTM(64)`` do; the input pipeline, quantile head, loss and optimiser are the Mamba
forecaster's (``models.lstm`` explains which ``MambaConfig`` fields apply).
"""

from __future__ import annotations

import keras

from ml.state_space.models.heads import compile_model, recurrent_network
from ml.state_space.models.mamba.layers import MinGRU
from ml.state_space.models.mamba.model import MambaConfig, check_output_steps
from ml.state_space.models.neural import NeuralForecaster


def build_mingru(config: MambaConfig, n_features: int, output_steps: int = 1) -> keras.Model:
    """(batch, seq_len, n_features) -> (batch, H, Q) through 2 x MinGRU(64); ``output_steps``
    K > 1: (batch, K, H, Q) at the last K steps (the training network, same weights)."""
    check_output_steps(output_steps, config.seq_len)
    return recurrent_network(config, n_features, output_steps, _mingru, "mingru")


def _mingru(units: int, return_sequences: bool, name: str) -> keras.layers.Layer:
    return MinGRU(units, return_sequences=return_sequences, name=name)


class MinGRUForecaster(NeuralForecaster):
    """Per-symbol (or, pooled, universe) 2 x MinGRU(64) quantile forecaster."""

    family = "mingru"

    def build_network(self, n_features: int, output_steps: int = 1) -> keras.Model:
        network = build_mingru(self.config.model, n_features, output_steps)
        return compile_model(network, self.config.model)
