"""The Mamba-2 forecaster: the shared neural pipeline around the Mamba network."""

from __future__ import annotations

import keras

from ml.state_space.models.heads import compile_model
from ml.state_space.models.mamba.model import build_model
from ml.state_space.models.neural import NeuralForecaster


class MambaForecaster(NeuralForecaster):
    """Per-symbol Mamba-2 quantile forecaster (see ``docs/MODEL.md``)."""

    family = "mamba"

    def build_network(self, n_features: int, output_steps: int = 1) -> keras.Model:
        model_config = self.config.model
        return compile_model(build_model(model_config, n_features, output_steps), model_config)
