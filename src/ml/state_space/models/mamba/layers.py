"""Keras layers: the per-window input standardisation, the Mamba-2 mixer, the minimal GRU
(a recurrent peer) and the non-crossing quantile output."""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from ml.state_space.models.mamba.ssd import DEFAULT_CHUNK_SIZE, ssd_final_state, ssd_scan

PACKAGE = "ml.state_space"


def _dt_bias_initializer(dt_min: float, dt_max: float, floor: float):
    """Inverse-softplus of dt ~ log-uniform[dt_min, dt_max] (Mamba reference init)."""

    def init(shape, dtype=None):
        log_dt = keras.random.uniform(shape, math.log(dt_min), math.log(dt_max), dtype="float32")
        dt = ops.maximum(ops.exp(log_dt), floor)
        return ops.cast(dt + ops.log(-ops.expm1(-dt)), dtype or "float32")

    return init


def _a_log_initializer(low: float, high: float):
    """A_log = log(A), A ~ uniform[low, high] per head (Mamba-2 reference init)."""

    def init(shape, dtype=None):
        return ops.cast(ops.log(keras.random.uniform(shape, low, high)), dtype or "float32")

    return init


def _split(x, sizes: list[int]) -> list:
    """Split the last axis of ``x`` into consecutive parts of the given ``sizes``."""
    return ops.split(x, [int(i) for i in np.cumsum(sizes)[:-1]], axis=-1)


@keras.saving.register_keras_serializable(package=PACKAGE)
class Mamba2(keras.layers.Layer):
    """Mamba-2 mixer: in-projection, causal conv, SSD scan, gated RMSNorm, out-projection.

    Maps (batch, L, d_model) -> (batch, L, d_model); output step t depends only on steps <= t.
    With ``return_sequences=False`` only the last step is computed: (batch, d_model).
    """

    def __init__(
        self,
        d_state: int = 16,
        expand: int = 2,
        head_dim: int = 32,
        d_conv: int = 4,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        dt_min: float = 1e-3,
        dt_max: float = 1e-1,
        dt_init_floor: float = 1e-4,
        a_init_range: tuple[float, float] = (1.0, 16.0),
        norm_epsilon: float = 1e-5,
        return_sequences: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"Need 0 < dt_min <= dt_max, got dt_min={dt_min}, dt_max={dt_max}.")
        if not 0 < a_init_range[0] <= a_init_range[1]:
            raise ValueError(f"a_init_range must be 0 < low <= high, got {a_init_range!r}.")
        self.d_state = d_state
        self.expand = expand
        self.head_dim = head_dim
        self.d_conv = d_conv
        self.chunk_size = chunk_size
        self.dt_min = dt_min
        self.dt_max = dt_max
        self.dt_init_floor = dt_init_floor
        self.a_init_range = tuple(a_init_range)
        self.norm_epsilon = norm_epsilon
        self.return_sequences = return_sequences

    def build(self, input_shape) -> None:
        d_model = input_shape[-1]
        self.d_inner = self.expand * d_model
        if self.d_inner % self.head_dim:
            raise ValueError(
                f"expand * d_model = {self.d_inner} is not a multiple of head_dim={self.head_dim}; "
                "choose a head_dim that divides it."
            )
        self.n_heads = self.d_inner // self.head_dim
        conv_dim = self.d_inner + 2 * self.d_state
        self.split_sizes = [self.d_inner, conv_dim, self.n_heads]  # z | x, B, C | dt
        self.in_proj = self.add_weight(
            shape=(d_model, sum(self.split_sizes)), initializer="glorot_uniform", name="in_proj"
        )
        bound = 1.0 / math.sqrt(self.d_conv)
        self.conv_kernel = self.add_weight(
            shape=(self.d_conv, conv_dim),
            initializer=keras.initializers.RandomUniform(-bound, bound),
            name="conv_kernel",
        )
        self.conv_bias = self.add_weight(shape=(conv_dim,), initializer="zeros", name="conv_bias")
        self.dt_bias = self.add_weight(
            shape=(self.n_heads,),
            initializer=_dt_bias_initializer(self.dt_min, self.dt_max, self.dt_init_floor),
            name="dt_bias",
        )
        self.a_log = self.add_weight(
            shape=(self.n_heads,), initializer=_a_log_initializer(*self.a_init_range), name="A_log"
        )
        self.d_skip = self.add_weight(shape=(self.n_heads,), initializer="ones", name="D")
        self.norm_weight = self.add_weight(shape=(self.d_inner,), initializer="ones", name="norm")
        self.out_proj = self.add_weight(
            shape=(self.d_inner, d_model), initializer="glorot_uniform", name="out_proj"
        )

    def _causal_conv(self, u):
        """Depthwise causal conv as d_conv shifted multiply-adds (fast under XLA)."""
        length = u.shape[1]
        padded = ops.pad(u, ((0, 0), (self.d_conv - 1, 0), (0, 0)))  # (b, L+K-1, ch)
        taps = [padded[:, k : k + length] * self.conv_kernel[k] for k in range(self.d_conv)]
        return ops.add(sum(taps[1:], taps[0]), self.conv_bias)  # (b, L, ch)

    def _project(self, u):
        """In-projection: z (b, L', di), xbc (b, L, di+2n), dt (b, L, h); L' = 1 if last step."""
        if self.return_sequences:
            return _split(ops.matmul(u, self.in_proj), self.split_sizes)
        w_z, w_xbcdt = ops.split(self.in_proj, [self.d_inner], axis=1)
        z = ops.matmul(u[:, -1:], w_z)  # (b, 1, di): the gate is only needed at the last step
        return [z, *_split(ops.matmul(u, w_xbcdt), self.split_sizes[1:])]

    def call(self, u):
        length = u.shape[1]
        z, xbc, dt = self._project(u)  # (b, L', di), (b, L, di + 2n), (b, L, h)
        xbc = ops.silu(self._causal_conv(xbc))  # (b, L, di + 2n)
        x, b, c = _split(xbc, [self.d_inner, self.d_state, self.d_state])  # x (b,L,di)
        dt = ops.softplus(dt + self.dt_bias)  # (b, L, h), > 0
        a = -ops.exp(self.a_log)  # (h,), < 0
        x = ops.reshape(x, (-1, length, self.n_heads, self.head_dim))  # (b, L, h, p)
        if self.return_sequences:
            y = ssd_scan(x, dt, a, b, c, self.chunk_size)  # (b, L, h, p)
        else:
            state = ssd_final_state(x, dt, a, b)  # (b, h, p, n)
            c_last = ops.reshape(c[:, -1], (-1, 1, self.d_state, 1))  # (b, 1, n, 1)
            y = ops.transpose(ops.matmul(state, c_last), (0, 3, 1, 2))  # (b, 1, h, p)
            x = x[:, -1:]  # (b, 1, h, p)
        y = y + x * ops.expand_dims(self.d_skip, -1)  # (b, L', h, p)
        y = ops.reshape(y, (-1, z.shape[1], self.d_inner)) * ops.silu(z)  # (b, L', di), gated
        ms = ops.mean(ops.square(y), axis=-1, keepdims=True)  # (b, L', 1)
        out_proj = ops.expand_dims(self.norm_weight, -1) * self.out_proj  # (di, d): norm folded in
        out = ops.matmul(y * ops.rsqrt(ms + self.norm_epsilon), out_proj)  # (b, L', d)
        return out if self.return_sequences else out[:, 0]  # (b, L, d) or (b, d)

    def compute_output_shape(self, input_shape):
        return input_shape if self.return_sequences else (input_shape[0], input_shape[-1])

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "d_state": self.d_state,
            "expand": self.expand,
            "head_dim": self.head_dim,
            "d_conv": self.d_conv,
            "chunk_size": self.chunk_size,
            "dt_min": self.dt_min,
            "dt_max": self.dt_max,
            "dt_init_floor": self.dt_init_floor,
            "a_init_range": list(self.a_init_range),
            "norm_epsilon": self.norm_epsilon,
            "return_sequences": self.return_sequences,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class MonotoneQuantiles(keras.layers.Layer):
    """(batch, H, Q) raw scores -> non-crossing quantiles.

    The median slot is kept as is; each other quantile is the median plus (above) or minus
    (below) a cumulative sum of softplus offsets, so q_0 <= q_1 <= ... <= q_{Q-1}.
    """

    def __init__(self, median_index: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.median_index = median_index

    def build(self, input_shape) -> None:
        n_q = input_shape[-1]
        if not 0 <= self.median_index < n_q:
            raise ValueError(f"median_index={self.median_index} is outside [0, {n_q}).")
        m = self.median_index
        rows, cols = np.arange(n_q)[:, None], np.arange(n_q)[None, :]
        upper = (rows > m) & (rows <= cols)  # offsets j in (m, k] add to quantile k > m
        lower = (rows < m) & (rows >= cols)  # offsets j in [k, m) subtract from quantile k < m
        self.mix = (upper.astype("float32") - lower.astype("float32")) + (rows == m)  # (Q, Q)
        self.is_median = (np.arange(n_q) == m).astype("float32")  # (Q,)

    def call(self, raw):
        mixed = self.is_median * raw + (1.0 - self.is_median) * ops.softplus(raw)  # (b, H, Q)
        return ops.matmul(mixed, self.mix)  # (b, H, Q), sorted along Q

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "median_index": self.median_index}


@keras.saving.register_keras_serializable(package=PACKAGE)
class WindowStandardization(keras.layers.Layer):
    """(batch, L, F) windows, each standardised on its own: every feature minus its mean
    over the window's first ``rows`` steps, divided by their std (at least ``std_floor``).

    Per-sequence normalisation: a window carries no series' statistics, so one network
    forecasts any series, one it never saw included. Statistics of the first ``rows``
    steps only keep a network supervised at its last K steps causal: with
    ``rows <= L - K + 1`` no supervised step's input depends on a later step (the
    serving network, K = 1, uses the same rows, so training and serving agree).
    """

    def __init__(self, rows: int, std_floor: float = 1e-3, **kwargs) -> None:
        super().__init__(**kwargs)
        if rows < 2:
            raise ValueError(f"rows={rows}: a window's std needs at least 2 steps")
        self.rows, self.std_floor = int(rows), float(std_floor)

    def build(self, input_shape) -> None:
        if input_shape[1] is not None and input_shape[1] < self.rows:
            raise ValueError(f"rows={self.rows} exceeds the window length {input_shape[1]}")

    def call(self, x):
        head = x[:, : self.rows]  # (b, rows, F)
        mean = ops.mean(head, axis=1, keepdims=True)  # (b, 1, F)
        std = ops.sqrt(ops.mean(ops.square(head - mean), axis=1, keepdims=True))
        return (x - mean) / ops.maximum(std, self.std_floor)  # (b, L, F)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "rows": self.rows, "std_floor": self.std_floor}


@keras.saving.register_keras_serializable(package=PACKAGE)
class MinGRU(keras.layers.Layer):
    """The minimal GRU (Feng et al., 2024, "Were RNNs All We Needed?"): its gate and its
    candidate read the input only,

        z_t = sigmoid(W_z x_t + b_z),  h~_t = W_h x_t + b_h,  h_t = (1 - z_t) h_{t-1} + z_t h~_t,

    with h_0 = 0, so a whole window is one linear recurrence, computed by a parallel scan
    of depth O(log L) instead of L sequential steps (:func:`linear_scan`).
    (batch, L, F) -> (batch, L, units), or (batch, units) without ``return_sequences``.
    """

    def __init__(self, units: int, return_sequences: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.units, self.return_sequences = int(units), bool(return_sequences)

    def build(self, input_shape) -> None:
        features = int(input_shape[-1])
        self.kernel = self.add_weight(
            shape=(features, 2 * self.units), initializer="glorot_uniform", name="kernel"
        )
        self.bias = self.add_weight(shape=(2 * self.units,), initializer="zeros", name="bias")

    def call(self, x):
        gate, candidate = _split(ops.matmul(x, self.kernel) + self.bias, [self.units] * 2)
        z = ops.sigmoid(gate)  # (b, L, units)
        h = linear_scan(1.0 - z, z * candidate)
        return h if self.return_sequences else h[:, -1]

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            return (*input_shape[:-1], self.units)
        return (input_shape[0], self.units)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "units": self.units,
            "return_sequences": self.return_sequences,
        }


def linear_scan(a, b):
    """Every ``h_t = a_t h_{t-1} + b_t`` (h_0 = 0) along axis 1 of (batch, L, d) tensors, by
    the Hillis-Steele doubling scan: step k composes each element with the one 2^k
    before it, log2(L) steps of whole-tensor ops (static shapes, so XLA compiles it;
    Keras's ``ops.associative_scan`` did not, for odd L)."""
    length, shift = a.shape[1], 1
    while shift < length:
        earlier_a = ops.pad(a[:, :-shift], ((0, 0), (shift, 0), (0, 0)), constant_values=1.0)
        earlier_b = ops.pad(b[:, :-shift], ((0, 0), (shift, 0), (0, 0)))
        a, b = a * earlier_a, a * earlier_b + b
        shift *= 2
    return b
