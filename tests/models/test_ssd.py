"""ssd_scan against independent float64 sequential recurrences (NumPy forward, TF gradients)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from ml.state_space.models.mamba.ssd import chunk_layout, ssd_final_state, ssd_scan

HEADS, HEAD_DIM, D_STATE = 3, 4, 5


def reference_scan(x, dt, A, B, C):
    """float64 loop: h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T, y_t = h_t C_t; returns (y, h_L)."""
    batch, length = x.shape[:2]
    h = np.zeros((batch, HEADS, HEAD_DIM, D_STATE))
    y = np.zeros_like(x)
    for t in range(length):
        decay = np.exp(dt[:, t] * A)[:, :, None, None]
        h = decay * h + (dt[:, t, :, None] * x[:, t])[..., None] * B[:, t, None, None, :]
        y[:, t] = np.einsum("bhpn,bn->bhp", h, C[:, t])
    return y, h


def inputs(length: int, dt_scale: float, seed: int = 0, batch: int = 2):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, length, HEADS, HEAD_DIM))
    dt = dt_scale * rng.uniform(0.2, 1.5, size=(batch, length, HEADS))
    A = -rng.uniform(1.0, 16.0, size=HEADS)
    B = rng.normal(size=(batch, length, D_STATE))
    C = rng.normal(size=(batch, length, D_STATE))
    return x, dt, A, B, C


def as_f32(*arrays):
    return [tf.constant(a, tf.float32) for a in arrays]


@pytest.mark.parametrize("length", [1, 7, 8, 13, 33])
@pytest.mark.parametrize("dt_scale", [0.01, 0.3, 20.0])
def test_forward_matches_sequential_float64(length: int, dt_scale: float) -> None:
    args = inputs(length, dt_scale, seed=length)
    expected, _ = reference_scan(*args)
    got = ssd_scan(*as_f32(*args), chunk_size=8).numpy()
    assert got.shape == (2, length, HEADS, HEAD_DIM)
    np.testing.assert_allclose(got, expected, rtol=2e-4, atol=2e-5 * np.abs(expected).max())


def test_chunk_size_does_not_change_result() -> None:
    args = as_f32(*inputs(29, 0.1))
    outputs = [ssd_scan(*args, chunk_size=c).numpy() for c in (1, 4, 10, 29, 64)]
    for other in outputs[1:]:
        np.testing.assert_allclose(other, outputs[0], rtol=1e-4, atol=1e-5)


def test_long_sequence_with_huge_dt_is_finite_and_exact() -> None:
    x, dt, A, B, C = inputs(300, 1.0, seed=3)
    dt[:, ::7] = 500.0  # exp(dt*A) underflows to 0 at these steps
    expected, _ = reference_scan(x, dt, A, B, C)
    got = ssd_scan(*as_f32(x, dt, A, B, C), chunk_size=32).numpy()
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())


def test_final_state_matches_reference_and_last_output() -> None:
    x, dt, A, B, C = inputs(11, 0.2)
    y_ref, h_ref = reference_scan(x, dt, A, B, C)
    state = ssd_final_state(*as_f32(x, dt, A, B)).numpy()  # (b, h, p, n)
    np.testing.assert_allclose(state, h_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.einsum("bhpn,bn->bhp", state, C[:, -1]), y_ref[:, -1], atol=1e-4)


def sequential_tf64(x, dt, A, B, C):
    """Plain float64 TF loop (differentiable), independent of the chunked matrix form."""
    h = tf.zeros((x.shape[0], HEADS, HEAD_DIM, D_STATE), tf.float64)
    ys = []
    for t in range(x.shape[1]):
        decay = tf.exp(dt[:, t] * A)[:, :, None, None]
        h = decay * h + (dt[:, t, :, None] * x[:, t])[..., None] * B[:, t, None, None, :]
        ys.append(tf.einsum("bhpn,bn->bhp", h, C[:, t]))
    return tf.stack(ys, axis=1)


@pytest.mark.parametrize(("length", "dt_scale"), [(13, 0.1), (9, 3.0)])
def test_gradients_match_sequential_float64(length: int, dt_scale: float) -> None:
    args = inputs(length, dt_scale, seed=11)
    weights = np.random.default_rng(5).normal(size=(2, length, HEADS, HEAD_DIM))

    def grads(fn, dtype):
        tensors = [tf.constant(a, dtype) for a in args]
        with tf.GradientTape() as tape:
            tape.watch(tensors)
            loss = tf.reduce_sum(fn(*tensors) * tf.constant(weights, dtype))
        return [g.numpy() for g in tape.gradient(loss, tensors)]

    got = grads(lambda *a: ssd_scan(*a, chunk_size=4), tf.float32)
    expected = grads(sequential_tf64, tf.float64)
    for name, g, e in zip(["x", "dt", "A", "B", "C"], got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=2e-3, atol=2e-4 * np.abs(e).max(), err_msg=name)


def test_xla_compiled_scan_matches_eager() -> None:
    args = as_f32(*inputs(20, 0.5))
    compiled = tf.function(lambda *a: ssd_scan(*a, chunk_size=8), jit_compile=True)
    np.testing.assert_allclose(compiled(*args).numpy(), ssd_scan(*args, chunk_size=8), atol=1e-5)


def test_chunk_layout_minimises_padding_and_rejects_bad_sizes() -> None:
    assert chunk_layout(60, 64) == (1, 60)
    assert chunk_layout(61, 32) == (2, 31)
    with pytest.raises(ValueError, match="chunk_size"):
        chunk_layout(10, 0)
