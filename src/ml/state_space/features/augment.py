"""Training-time augmentation of normalised windows.

``DataAugmentor.augment(x_train)`` perturbs inputs only (targets are untouched) and is meant
for the training segment alone: validation and test windows must stay the real data, or
early stopping and test metrics would be measured on synthetic inputs.
"""

from __future__ import annotations

import logging

import numpy as np

__all__ = ["DataAugmentor"]

logger = logging.getLogger(__name__)


class DataAugmentor:
    """Seeded Gaussian noise, magnitude warping and feature dropout on (n, seq_len, F) windows.

    - noise: ``x + N(0, noise_std)`` (normalised units);
    - magnitude warp: ``x * curve`` with one smooth curve per sample and feature, through
      ``n_knots + 2`` evenly spaced knots drawn from ``N(1, magnitude_warp_std)`` and
      cosine-interpolated over time;
    - feature dropout: each (sample, feature) is zeroed (= its training mean) over the whole
      window with probability ``feature_dropout``.

    Calls draw from one ``numpy.random.Generator`` seeded once, so a run is reproducible
    while successive calls (epochs) differ.
    """

    def __init__(
        self,
        noise_std: float = 0.02,
        magnitude_warp_std: float = 0.05,
        feature_dropout: float = 0.05,
        seed: int | None = 0,
        n_knots: int = 4,
    ) -> None:
        if noise_std < 0 or magnitude_warp_std < 0:
            raise ValueError(
                f"noise_std={noise_std} and magnitude_warp_std={magnitude_warp_std} must be >= 0"
            )
        if not 0 <= feature_dropout < 1:
            raise ValueError(f"feature_dropout={feature_dropout} must be in [0, 1)")
        if n_knots < 1:
            raise ValueError(f"n_knots={n_knots} must be >= 1")
        self.noise_std = noise_std
        self.magnitude_warp_std = magnitude_warp_std
        self.feature_dropout = feature_dropout
        self.seed = seed
        self.n_knots = n_knots
        self._rng = np.random.default_rng(seed)

    def __repr__(self) -> str:
        return (
            f"DataAugmentor(noise_std={self.noise_std}, magnitude_warp_std="
            f"{self.magnitude_warp_std}, feature_dropout={self.feature_dropout}, seed={self.seed})"
        )

    def augment(self, x_train: np.ndarray) -> np.ndarray:
        """A new augmented copy of training windows ``x_train`` (n, seq_len, F); float32/64 keep
        their dtype, other dtypes come back as float64."""
        x = np.asarray(x_train)
        if x.ndim != 3:
            raise ValueError(f"expected training windows of shape (n, seq_len, F), got {x.shape}")
        n, seq_len, n_features = x.shape
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        out = np.array(x, dtype=dtype)  # a copy: the caller's array is never modified
        if self.magnitude_warp_std > 0:
            out *= self._warp_curves(n, seq_len, n_features).astype(dtype)
        if self.noise_std > 0:
            out += self.noise_std * self._rng.standard_normal(out.shape, dtype=dtype)
        if self.feature_dropout > 0:
            out *= self._rng.random((n, 1, n_features)) >= self.feature_dropout  # (n, 1, F)
        logger.debug("augmented %d windows with %r", n, self)
        return out

    def _warp_curves(self, n: int, seq_len: int, n_features: int) -> np.ndarray:
        """Smooth multiplicative curves (n, seq_len, F) around 1."""
        knots = self._rng.normal(
            1.0, self.magnitude_warp_std, size=(n, self.n_knots + 2, n_features)
        )
        position = np.linspace(0.0, self.n_knots + 1, seq_len)  # knot coordinate of each step
        left = np.minimum(position.astype(int), self.n_knots)  # (seq_len,)
        weight = (1.0 - np.cos(np.pi * (position - left))) / 2.0  # cosine easing in [0, 1]
        weight = weight[None, :, None]  # (1, seq_len, 1)
        return knots[:, left] * (1.0 - weight) + knots[:, left + 1] * weight
