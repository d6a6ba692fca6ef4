"""MambaConfig, build_model/compile_model, quantile loss, and .keras save/load."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from ml.state_space.models.heads import compile_model
from ml.state_space.models.losses import QuantileLoss, pinball_loss
from ml.state_space.models.mamba.model import MambaConfig, build_model

TINY = MambaConfig(d_model=16, n_layers=2, d_state=4, head_dim=8, seq_len=12, chunk_size=5)
N_FEATURES = 5


def batch(n: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, TINY.seq_len, N_FEATURES)).astype("float32")
    return x, rng.normal(size=(n, TINY.n_horizons)).astype("float32")


def test_default_config_and_derived_values() -> None:
    config = MambaConfig()
    assert (config.d_model, config.n_layers, config.d_state, config.expand) == (64, 4, 16, 2)
    assert (config.d_inner, config.n_heads, config.n_horizons, config.n_quantiles) == (128, 4, 4, 3)
    assert config.quantiles[config.median_index] == 0.5


def test_config_json_round_trip_and_validation() -> None:
    restored = MambaConfig.from_dict(json.loads(json.dumps(TINY.to_dict())))
    assert restored == TINY
    with pytest.raises(ValueError, match="bogus"):
        MambaConfig.from_dict({**TINY.to_dict(), "bogus": 1})
    with pytest.raises(ValueError, match="head_dim=48"):
        MambaConfig(head_dim=48)
    with pytest.raises(ValueError, match="quantiles"):
        MambaConfig(quantiles=(0.9, 0.1))


def test_model_outputs_sorted_quantiles_per_horizon() -> None:
    model = build_model(TINY, N_FEATURES)
    out = np.asarray(model(batch()[0]))
    assert out.shape == (8, TINY.n_horizons, TINY.n_quantiles)
    assert (np.diff(out, axis=-1) >= 0).all()


def test_pinball_loss_matches_hand_computation() -> None:
    y_true = np.array([[0.0, 1.0]], "float32")
    y_pred = np.array([[[-1.0, 0.0, 1.0], [0.0, 0.5, 2.0]]], "float32")  # (1, H=2, Q=3)
    errors = np.array([[1.0, 0.0, -1.0], [1.0, 0.5, -1.0]])  # y - q
    q = np.array([0.1, 0.5, 0.9])
    expected = np.maximum(q * errors, (q - 1) * errors).mean()
    got = pinball_loss(y_true, y_pred, (0.1, 0.5, 0.9))
    np.testing.assert_allclose(np.asarray(got), [expected], rtol=1e-6)
    with_point = QuantileLoss((0.1, 0.5, 0.9), point_loss_weight=2.0)(y_true, y_pred)
    huber = np.mean([0.0, 0.5 * 0.5**2])  # median errors 0 and 0.5
    np.testing.assert_allclose(float(with_point), expected + 2.0 * huber, rtol=1e-6)


def test_compiled_model_trains_with_clipping_and_finite_loss() -> None:
    model = compile_model(build_model(TINY, N_FEATURES), TINY)
    assert model.optimizer.clipnorm == TINY.clipnorm
    x, y = batch(16)
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0).history
    assert np.isfinite(history["loss"]).all() and "median_mae" in history


def test_extreme_inputs_give_finite_outputs_and_gradients() -> None:
    model = build_model(TINY, N_FEATURES)
    x, y = batch()
    loss_fn = QuantileLoss(TINY.quantiles, point_loss_weight=0.1)
    for scale in (1e3, -1e3):
        inputs = tf.constant(x * scale)
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(inputs, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        assert np.isfinite(float(loss))
        assert all(np.isfinite(keras.ops.convert_to_numpy(g)).all() for g in grads)


LOAD_SCRIPT = """
import sys, numpy as np, keras
import ml.state_space.models.mamba.model  # registers the custom objects
model = keras.saving.load_model(sys.argv[1])
np.save(sys.argv[3], model.predict(np.load(sys.argv[2]), verbose=0))
"""


def test_saved_model_reloads_in_a_fresh_process_without_custom_objects(tmp_path: Path) -> None:
    config = dataclasses.replace(TINY, jit_compile=False)  # XLA compile time is not under test
    model = compile_model(build_model(config, N_FEATURES), config)
    x, y = batch()
    model.fit(x, y, epochs=1, verbose=0)
    path, x_path, out_path = tmp_path / "m.keras", tmp_path / "x.npy", tmp_path / "out.npy"
    model.save(path)
    np.save(x_path, x)
    expected = model.predict(x, verbose=0)
    np.testing.assert_array_equal(keras.saving.load_model(path).predict(x, verbose=0), expected)
    subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, str(path), str(x_path), str(out_path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    np.testing.assert_allclose(np.load(out_path), expected, rtol=1e-6, atol=1e-7)
