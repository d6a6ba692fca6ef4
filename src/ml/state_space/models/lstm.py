"""The LSTM peer: what a user would pick instead of Mamba, with everything else equal.

Two stacked ``LSTM(64)`` layers replace the Mamba blocks; the input pipeline, quantile
head, loss and optimiser are the Mamba forecaster's (the ``MambaConfig`` fields that
describe the sequence, head, loss and optimiser are used; the Mamba block sizes are not).
"""

from __future__ import annotations

import keras

from ml.state_space.models.heads import compile_model, quantile_head, window_inputs
from ml.state_space.models.mamba.model import MambaConfig, check_output_steps
from ml.state_space.models.neural import NeuralForecaster

LSTM_UNITS = 64
LSTM_LAYERS = 2


def build_lstm(config: MambaConfig, n_features: int, output_steps: int = 1) -> keras.Model:
    """(batch, seq_len, n_features) -> (batch, H, Q) through 2 x LSTM(64); ``output_steps``
    K > 1: (batch, K, H, Q) at the last K steps (the training network, same weights)."""
    check_output_steps(output_steps, config.seq_len)
    inputs, h = window_inputs(config, n_features)  # (b, L, F)
    for i in range(LSTM_LAYERS):
        last_step_only = i == LSTM_LAYERS - 1 and output_steps == 1
        h = keras.layers.LSTM(LSTM_UNITS, return_sequences=not last_step_only, name=f"lstm_{i}")(h)
    if output_steps > 1:
        h = keras.layers.Cropping1D((config.seq_len - output_steps, 0), name="last_steps")(h)
    return keras.Model(inputs, quantile_head(h, config), name="lstm_forecaster")


class LSTMForecaster(NeuralForecaster):
    """Per-symbol 2 x LSTM(64) quantile forecaster on the Mamba model's pipeline."""

    family = "lstm"
    xla = False  # XLA does not speed the LSTM up on CPU; Keras' "auto" leaves it off there

    def build_network(self, n_features: int, output_steps: int = 1) -> keras.Model:
        network = build_lstm(self.config.model, n_features, output_steps)
        return compile_model(network, self.config.model, "auto")
