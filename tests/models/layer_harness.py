"""One check every custom Keras layer passes, in the spirit of keras-hub's
``run_layer_test``: build, call, output shape, config and serialisation round trips, and
a reload inside a saved model that computes the same outputs, eagerly and compiled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf


def run_layer_test(
    layer_cls: type[keras.layers.Layer],
    init_kwargs: dict[str, Any],
    input_data: np.ndarray,
    expected_output_shape: tuple[int, ...],
    tmp_path: Path,
    expected_trainable_weights: int = 0,
) -> np.ndarray:
    """Check ``layer_cls(**init_kwargs)`` on ``input_data``; returns its output."""
    layer = layer_cls(**init_kwargs)
    output = keras.ops.convert_to_numpy(layer(input_data))
    assert output.shape == expected_output_shape
    assert tuple(layer.compute_output_shape(input_data.shape)) == expected_output_shape
    assert len(layer.trainable_weights) == expected_trainable_weights
    assert np.isfinite(output).all()

    config = layer.get_config()
    assert layer_cls.from_config(config).get_config() == config
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is layer_cls and revived.get_config() == config

    inputs = keras.Input(input_data.shape[1:], batch_size=input_data.shape[0])
    model = keras.Model(inputs, layer_cls(**init_kwargs)(inputs))
    path = tmp_path / f"{layer_cls.__name__}.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path, compile=False)
    expected = keras.ops.convert_to_numpy(model(input_data))
    np.testing.assert_allclose(reloaded(input_data), expected, rtol=1e-5, atol=1e-6)
    compiled = tf.function(lambda x: reloaded(x, training=False), jit_compile=True)
    np.testing.assert_allclose(compiled(input_data), expected, rtol=1e-4, atol=1e-5)
    return output
