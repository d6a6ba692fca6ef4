"""Mamba-2 state space duality (SSD) scan: chunked matrix form of a scalar-decay SSM.

Recurrence per head (h_0 = 0):  h_t = exp(dt_t * A) h_{t-1} + dt_t x_t B_t^T,  y_t = h_t C_t.
Inside a chunk of length l the output is the masked matrix product
``y = (exp(segsum(dt*A)) * (C B^T)) (dt x)``; the chunk-final states carry the history
from chunk to chunk through a small (n_chunks, n_chunks) decay matrix. Every exponent is
<= 0 (differences of a decreasing cumulative sum, clipped at 0, with -inf above the
diagonal), so long sequences and large ``dt`` cannot overflow.
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

DEFAULT_CHUNK_SIZE = 64


def chunk_layout(length: int, chunk_size: int) -> tuple[int, int]:
    """Return ``(n_chunks, chunk_len)`` covering ``length`` steps with the least padding."""
    if length < 1 or chunk_size < 1:
        raise ValueError(
            f"ssd_scan needs a static sequence length >= 1 and chunk_size >= 1, got "
            f"length={length!r}, chunk_size={chunk_size!r}; pass inputs with a known length."
        )
    n_chunks = math.ceil(length / chunk_size)
    return n_chunks, math.ceil(length / n_chunks)


def _neg_inf_above(size: int, include_diagonal: bool) -> np.ndarray:
    """(size, size) float32 matrix: 0 on/below the diagonal, -inf above (and on it if asked)."""
    keep = np.tril(np.ones((size, size), dtype=bool), k=-1 if include_diagonal else 0)
    return np.where(keep, 0.0, -np.inf).astype(np.float32)


def _cumsum(a):
    """Inclusive cumulative sum over the last axis as a matmul (XLA's reduce-window is slow)."""
    size = a.shape[-1]
    return ops.matmul(a, np.triu(np.ones((size, size), dtype=np.float32)))  # (..., size)


def _end_states(x, cs, B):
    """State at the end of each chunk: sum_j exp(cs_end - cs_j) x_j B_j^T -> (..., p, n).

    x: (..., l, p) dt-scaled inputs; cs: (..., l) cumulative log-decay; B: (..., l, n).
    """
    to_end = ops.exp(cs[..., -1:] - cs)  # (..., l): decay from each step to the end, <= 1
    return ops.matmul(ops.swapaxes(x * ops.expand_dims(to_end, -1), -1, -2), B)  # (..., p, n)


def ssd_final_state(x, dt, A, B):
    """State h_L after the last step (same arguments as ``ssd_scan``): (batch, heads, p, n).

    ``y_L = h_L C_L`` is the last output of ``ssd_scan`` at O(L) instead of O(L^2) cost.
    """
    x = ops.transpose(x * ops.expand_dims(dt, -1), (0, 2, 1, 3))  # (b, h, L, p)
    cs = _cumsum(ops.transpose(dt * A, (0, 2, 1)))  # (b, h, L)
    return _end_states(x, cs, ops.expand_dims(B, 1))  # (b, h, p, n)


def ssd_scan(x, dt, A, B, C, chunk_size: int = DEFAULT_CHUNK_SIZE):
    """Run the SSD recurrence for all steps at once.

    Args:
        x: (batch, L, heads, head_dim) inputs.
        dt: (batch, L, heads) positive step sizes.
        A: (heads,) negative decay rates.
        B: (batch, L, d_state) input projections (shared by all heads).
        C: (batch, L, d_state) output projections (shared by all heads).
        chunk_size: maximum chunk length; L need not be a multiple (the tail is padded).

    Returns:
        y: (batch, L, heads, head_dim), without the ``D * x`` skip term.
    """
    length, heads, head_dim = x.shape[1], x.shape[2], x.shape[3]
    d_state = B.shape[-1]
    n_chunks, chunk = chunk_layout(length, chunk_size)
    pad = n_chunks * chunk - length
    if pad:  # zero-padded steps (dt=0, x=0) come after every real step: no effect on them
        x = ops.pad(x, ((0, 0), (0, pad), (0, 0), (0, 0)))
        dt = ops.pad(dt, ((0, 0), (0, pad), (0, 0)))
        B = ops.pad(B, ((0, 0), (0, pad), (0, 0)))
        C = ops.pad(C, ((0, 0), (0, pad), (0, 0)))

    x = x * ops.expand_dims(dt, -1)  # (b, T, h, p): dt folded into the input
    x = ops.reshape(x, (-1, n_chunks, chunk, heads, head_dim))  # (b, c, l, h, p)
    x = ops.transpose(x, (0, 3, 1, 2, 4))  # (b, h, c, l, p)
    a = ops.transpose(dt * A, (0, 2, 1))  # (b, h, T): log-decay per step, <= 0
    cs = _cumsum(ops.reshape(a, (-1, heads, n_chunks, chunk)))  # (b, h, c, l)
    B = ops.expand_dims(ops.reshape(B, (-1, n_chunks, chunk, d_state)), 1)  # (b, 1, c, l, n)
    C = ops.expand_dims(ops.reshape(C, (-1, n_chunks, chunk, d_state)), 1)  # (b, 1, c, l, n)

    # Intra-chunk (diagonal blocks): y_i = sum_{j<=i} exp(cs_i - cs_j) (C_i . B_j) x_j.
    seg = ops.expand_dims(cs, -1) - ops.expand_dims(cs, -2)  # (b, h, c, l, l)
    decay = ops.exp(ops.minimum(seg, 0.0) + _neg_inf_above(chunk, False))  # (b, h, c, l, l)
    scores = ops.matmul(C, ops.swapaxes(B, -1, -2))  # (b, 1, c, l, l)
    y = ops.matmul(decay * scores, x)  # (b, h, c, l, p)

    if n_chunks > 1:  # Inter-chunk: states entering each chunk, decayed into its outputs.
        states = _end_states(x, cs, B)  # (b, h, c, p, n)
        totals = cs[..., -1]  # (b, h, c): log-decay over each whole chunk
        ends = _cumsum(totals)  # (b, h, c)
        starts = ends - totals  # (b, h, c): cumulative log-decay before each chunk
        gap = ops.expand_dims(starts, -1) - ops.expand_dims(ends, -2)  # (b, h, c, c)
        carry = ops.exp(ops.minimum(gap, 0.0) + _neg_inf_above(n_chunks, True))  # (b,h,c,c)
        flat = ops.reshape(states, (-1, heads, n_chunks, head_dim * d_state))  # (b,h,c,p*n)
        entering = ops.reshape(
            ops.matmul(carry, flat), (-1, heads, n_chunks, head_dim, d_state)
        )  # (b, h, c, p, n)
        y_off = ops.matmul(C, ops.swapaxes(entering, -1, -2))  # (b, h, c, l, p)
        y = y + y_off * ops.expand_dims(ops.exp(cs), -1)  # (b, h, c, l, p)

    y = ops.transpose(y, (0, 2, 3, 1, 4))  # (b, c, l, h, p)
    y = ops.reshape(y, (-1, n_chunks * chunk, heads, head_dim))  # (b, T, h, p)
    return y[:, :length] if pad else y  # (b, L, h, p)
