"""The LSTM peer: what a user would pick instead of Mamba, with everything else equal.

Two stacked ``LSTM(64)`` layers replace the Mamba blocks; the input pipeline, quantile
head, loss and optimiser are the Mamba forecaster's (the ``MambaConfig`` fields that
describe the sequence, head, loss and optimiser are used; the Mamba block sizes are not).
"""

from __future__ import annotations

import keras

from ml.state_space.models.heads import compile_model, recurrent_network
from ml.state_space.models.mamba.model import MambaConfig, check_output_steps
from ml.state_space.models.neural import NeuralForecaster


def build_lstm(config: MambaConfig, n_features: int, output_steps: int = 1) -> keras.Model:
    """(batch, seq_len, n_features) -> (batch, H, Q) through 2 x LSTM(64); ``output_steps``
    K > 1: (batch, K, H, Q) at the last K steps (the training network, same weights)."""
    check_output_steps(output_steps, config.seq_len)
    return recurrent_network(config, n_features, output_steps, _lstm, "lstm")


def _lstm(units: int, return_sequences: bool, name: str) -> keras.layers.Layer:
    return keras.layers.LSTM(units, return_sequences=return_sequences, name=name)


class LSTMForecaster(NeuralForecaster):
    """Per-symbol 2 x LSTM(64) quantile forecaster on the Mamba model's pipeline."""

    family = "lstm"
    xla = False  # XLA does not speed the LSTM up on CPU; Keras' "auto" leaves it off there

    def build_network(self, n_features: int, output_steps: int = 1) -> keras.Model:
        network = build_lstm(self.config.model, n_features, output_steps)
        return compile_model(network, self.config.model, "auto")
