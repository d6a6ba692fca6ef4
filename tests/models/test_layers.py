"""The custom layers: Mamba2's causality and reference init, the quantiles' order, and the
shared harness every layer passes (build, call, shapes, serialise, reload, compile)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from ml.state_space.models.mamba.layers import (
    Mamba2,
    MinGRU,
    MonotoneQuantiles,
    WindowStandardization,
)
from tests.models.layer_harness import run_layer_test

TINY = {"d_state": 4, "expand": 2, "head_dim": 8, "d_conv": 4, "chunk_size": 5}


def window(batch: int = 3, length: int = 13, d_model: int = 16, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(batch, length, d_model)).astype("float32")


def test_output_shape_and_heads() -> None:
    layer = Mamba2(**TINY)
    out = layer(window())
    assert out.shape == (3, 13, 16)
    assert (layer.d_inner, layer.n_heads) == (32, 4)


def test_output_never_depends_on_future_steps() -> None:
    layer = Mamba2(**TINY)
    u = window(length=17)
    base = np.asarray(layer(u))
    for t in (0, 6, 16):
        changed = u.copy()
        changed[:, t] += 5.0
        out = np.asarray(layer(changed))
        np.testing.assert_allclose(out[:, :t], base[:, :t], rtol=0, atol=1e-6)  # float noise only
        assert np.abs(out[:, t] - base[:, t]).max() > 1e-2


def test_last_step_mode_equals_last_step_of_full_sequence() -> None:
    full = Mamba2(**TINY)
    u = window()
    expected = np.asarray(full(u))[:, -1]
    last = Mamba2(**TINY, return_sequences=False)
    last.build(u.shape)
    last.set_weights(full.get_weights())
    np.testing.assert_allclose(np.asarray(last(u)), expected, rtol=1e-5, atol=1e-6)


def test_reference_initialisation() -> None:
    layer = Mamba2(d_state=4, head_dim=4)
    layer.build((None, 10, 64))  # 32 heads: enough samples to check the ranges
    dt = np.log1p(np.exp(keras.ops.convert_to_numpy(layer.dt_bias)))
    a = np.exp(keras.ops.convert_to_numpy(layer.a_log))
    assert dt.min() >= 1e-3 * 0.999 and dt.max() <= 1e-1 * 1.001
    assert a.min() >= 1.0 and a.max() <= 16.0
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.d_skip), 1.0)


def test_bad_head_dim_is_rejected_with_the_values() -> None:
    with pytest.raises(ValueError, match="head_dim=12"):
        Mamba2(head_dim=12).build((None, 5, 16))


def test_extreme_inputs_stay_finite() -> None:
    out = Mamba2(**TINY)(window() * 1e3)
    assert np.isfinite(np.asarray(out)).all()


def test_monotone_quantiles_never_cross_and_keep_the_median() -> None:
    raw = np.random.default_rng(1).normal(scale=3.0, size=(50, 4, 5)).astype("float32")
    out = np.asarray(MonotoneQuantiles(median_index=2)(raw))
    assert (np.diff(out, axis=-1) > 0).all()
    np.testing.assert_allclose(out[..., 2], raw[..., 2], rtol=1e-6)


@pytest.mark.parametrize(
    ("layer_cls", "init_kwargs", "input_shape", "output_shape", "trainable"),
    [
        (Mamba2, TINY, (3, 13, 16), (3, 13, 16), 8),
        (Mamba2, {**TINY, "return_sequences": False}, (3, 13, 16), (3, 16), 8),
        (MonotoneQuantiles, {"median_index": 1}, (4, 2, 3), (4, 2, 3), 0),
        (WindowStandardization, {"rows": 9}, (3, 13, 5), (3, 13, 5), 0),
        (MinGRU, {"units": 6}, (3, 13, 5), (3, 13, 6), 2),
        (MinGRU, {"units": 6, "return_sequences": False}, (3, 13, 5), (3, 6), 2),
    ],
)
def test_every_layer_builds_calls_serialises_and_reloads(
    layer_cls, init_kwargs, input_shape, output_shape, trainable, tmp_path
):
    data = np.random.default_rng(0).normal(size=input_shape).astype("float32")
    run_layer_test(layer_cls, init_kwargs, data, output_shape, tmp_path, trainable)


def test_min_gru_scan_matches_the_sequential_recurrence():
    layer = MinGRU(units=4)
    x = window(batch=2, length=11, d_model=3, seed=5)
    out = np.asarray(layer(x))
    kernel, bias = (np.asarray(w, dtype=np.float64) for w in layer.get_weights())
    projected = x.astype(np.float64) @ kernel + bias
    z, candidate = 1.0 / (1.0 + np.exp(-projected[..., :4])), projected[..., 4:]
    h = np.zeros((2, 4))
    for t in range(11):
        h = (1.0 - z[:, t]) * h + z[:, t] * candidate[:, t]
        np.testing.assert_allclose(out[:, t], h, rtol=1e-5, atol=1e-6)
