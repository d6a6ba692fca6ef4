"""Mamba-2 multi-horizon quantile forecaster: config and network builder."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import keras

from ml.state_space.models.heads import quantile_head, window_inputs
from ml.state_space.models.losses import median_index
from ml.state_space.models.mamba.layers import Mamba2


@dataclass
class MambaConfig:
    """Hyper-parameters of the forecaster; derived sizes are filled in ``__post_init__``."""

    d_model: int = 64
    n_layers: int = 4
    d_state: int = 16
    expand: int = 2
    head_dim: int = 32
    d_conv: int = 4
    seq_len: int = 60
    horizons: tuple[int, ...] = (1, 5, 10, 30)
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    dropout: float = 0.1
    chunk_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    clipnorm: float = 1.0
    point_loss_weight: float = 0.1
    huber_delta: float = 1.0
    jit_compile: bool = True
    # > 0: each input window standardised on its own, by the mean and std of its first
    # this many steps (layers.WindowStandardization: no per-series statistics); 0: off
    window_norm_rows: int = 0
    d_inner: int = field(init=False)
    n_heads: int = field(init=False)
    n_horizons: int = field(init=False)
    n_quantiles: int = field(init=False)
    median_index: int = field(init=False)

    def __post_init__(self) -> None:
        self.horizons = tuple(int(h) for h in self.horizons)
        self.quantiles = tuple(float(q) for q in self.quantiles)
        for name in ("d_model", "n_layers", "d_state", "expand", "head_dim", "d_conv", "seq_len"):
            if getattr(self, name) < 1:
                raise ValueError(f"MambaConfig.{name} must be >= 1, got {getattr(self, name)!r}.")
        if (
            not self.horizons
            or min(self.horizons) < 1
            or len(set(self.horizons)) != len(self.horizons)
        ):
            raise ValueError(f"horizons must be distinct positive ints, got {self.horizons!r}.")
        if self.window_norm_rows and not 2 <= self.window_norm_rows <= self.seq_len:
            raise ValueError(
                f"window_norm_rows={self.window_norm_rows} must be 0 (off) or in "
                f"[2, seq_len={self.seq_len}]."
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}.")
        self.d_inner = self.expand * self.d_model
        if self.d_inner % self.head_dim:
            raise ValueError(
                f"expand * d_model = {self.d_inner} is not a multiple of head_dim={self.head_dim}; "
                "pick a head_dim that divides it."
            )
        self.n_heads = self.d_inner // self.head_dim
        self.n_horizons = len(self.horizons)
        self.n_quantiles = len(self.quantiles)
        self.median_index = median_index(self.quantiles)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready constructor arguments (derived fields left out)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.init}
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MambaConfig:
        """Inverse of ``to_dict``; derived keys are ignored, unknown keys rejected."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"Unknown MambaConfig keys {unknown}; expected a subset of {sorted(names)}."
            )
        init = {f.name for f in fields(cls) if f.init}
        return cls(**{k: v for k, v in data.items() if k in init})


def build_model(config: MambaConfig, n_features: int, output_steps: int = 1) -> keras.Model:
    """(batch, seq_len, n_features) -> (batch, n_horizons, n_quantiles) return quantiles.

    ``output_steps`` K > 1 gives the training network that is supervised at the last K
    steps of each window: (batch, K, n_horizons, n_quantiles), with the same weights.
    """
    if n_features < 1:
        raise ValueError(f"n_features must be >= 1, got {n_features!r}.")
    check_output_steps(output_steps, config.seq_len)
    inputs, windows = window_inputs(config, n_features)  # (b, L, F)
    h = keras.layers.Dense(config.d_model, name="input_projection")(windows)  # (b, L, d)
    for i in range(config.n_layers):
        last = i == config.n_layers - 1  # the last block only computes the output steps
        last_step_only = last and output_steps == 1
        normed = keras.layers.RMSNormalization(epsilon=1e-5, name=f"norm_{i}")(h)  # (b, L, d)
        mixed = Mamba2(
            d_state=config.d_state,
            expand=config.expand,
            head_dim=config.head_dim,
            d_conv=config.d_conv,
            chunk_size=config.chunk_size,
            return_sequences=not last_step_only,
            name=f"mamba_{i}",
        )(normed)  # (b, L, d), last block (b, d) or (b, K, d)
        if last_step_only:
            h = keras.layers.Cropping1D((config.seq_len - 1, 0), name="last_step")(h)  # (b, 1, d)
            h = keras.layers.Flatten(name="last_flat")(h)  # (b, d)
        elif last:
            crop = keras.layers.Cropping1D((config.seq_len - output_steps, 0), name="last_steps")
            h, mixed = crop(h), crop(mixed)  # (b, K, d)
        noise = None if last_step_only else (None, 1, config.d_model)  # one mask per window
        mixed = keras.layers.Dropout(config.dropout, noise_shape=noise, name=f"dropout_{i}")(mixed)
        h = keras.layers.Add(name=f"residual_{i}")([h, mixed])  # (b, L, d), last (b, [K,] d)
    h = keras.layers.RMSNormalization(epsilon=1e-5, name="final_norm")(h)  # (b, [K,] d)
    return keras.Model(inputs, quantile_head(h, config), name="mamba_forecaster")


def check_output_steps(output_steps: int, seq_len: int) -> None:
    """A network can be supervised at 1 to ``seq_len`` of its last steps."""
    if not 1 <= output_steps <= seq_len:
        raise ValueError(f"output_steps must be in [1, seq_len={seq_len}], got {output_steps!r}.")
