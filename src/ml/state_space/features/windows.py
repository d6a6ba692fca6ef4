"""Sliding windows, multi-horizon targets, normalisation and a leak-free chronological split.

Rows of the feature frame are split into three disjoint, consecutive segments
(train | val | test). A window belongs to a segment only when both its inputs and all
its targets lie inside that segment, so each boundary carries an embargo of
``max(horizons)`` rows of train targets that no later input touches (see
``docs/FEATURES.md``). The normaliser and target scale are fitted on train rows only.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "Normalizer",
    "SequenceGenerator",
    "SequenceSplit",
    "WindowSet",
    "min_feature_rows",
    "segment_bounds",
    "split_sequences",
    "target_std",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowSet:
    """Windows of one segment: ``x`` (n, seq_len, F) float32 (a read-only view of the
    segment's rows), ``y`` (n, H) float32 forward log returns, the anchor date and close of
    each window's last row."""

    x: np.ndarray
    y: np.ndarray
    anchor_dates: pd.DatetimeIndex
    last_close: np.ndarray

    def __len__(self) -> int:
        return len(self.x)


@dataclass(frozen=True)
class SequenceGenerator:
    """Window length, forecast horizons (rows ahead) and stride between anchors."""

    seq_len: int = 60
    horizons: tuple[int, ...] = (1, 5, 10, 30)
    stride: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "horizons", tuple(int(h) for h in self.horizons))
        if self.seq_len < 1 or self.stride < 1:
            raise ValueError(f"seq_len={self.seq_len} and stride={self.stride} must be >= 1")
        h = self.horizons
        if not h or min(h) < 1 or list(h) != sorted(set(h)):
            raise ValueError(f"horizons={h} must be distinct positive integers in increasing order")

    @property
    def max_horizon(self) -> int:
        return self.horizons[-1]

    @property
    def span(self) -> int:
        """Rows one window touches: its inputs plus the longest target."""
        return self.seq_len + self.max_horizon

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "horizons": list(self.horizons)}

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> SequenceGenerator:
        return cls(int(config["seq_len"]), tuple(config["horizons"]), int(config.get("stride", 1)))

    def windows(self, values: np.ndarray, close: np.ndarray, dates: pd.Index) -> WindowSet:
        """All windows whose inputs and targets lie in ``values``/``close`` (T rows), anchors
        stepped by ``stride`` back from the last possible one."""
        n_anchor = len(values) - self.span + 1
        if n_anchor < 1:
            n_features = values.shape[1] if values.ndim == 2 else 0
            empty = np.empty((0, self.seq_len, n_features), np.float32)
            return WindowSet(
                empty,
                np.empty((0, len(self.horizons)), np.float32),
                pd.DatetimeIndex([]),
                np.empty(0),
            )
        first = (n_anchor - 1) % self.stride  # so that the last possible window is included
        rows = np.ascontiguousarray(values, dtype=np.float32)
        view = sliding_window_view(rows, self.seq_len, axis=0)  # (T - seq_len + 1, F, seq_len)
        # a read-only view of the rows: window i is the contiguous block of rows i..i+L-1,
        # so the windows cost no memory of their own (a copy is seq_len times the rows)
        x = view[first : n_anchor : self.stride].transpose(0, 2, 1)  # (n, seq_len, F)
        anchors = np.arange(first, n_anchor, self.stride) + self.seq_len - 1
        log_close = np.log(close)
        y = log_close[anchors[:, None] + np.asarray(self.horizons)] - log_close[anchors, None]
        return WindowSet(
            x,
            y.astype(np.float32),
            pd.DatetimeIndex(dates[anchors]),
            close[anchors].astype(np.float64),
        )


class Normalizer:
    """Per-feature standardisation ``(x - mean) / std``; a std below ``std_floor`` is replaced
    by 1 so (near-)constant training features are only centred."""

    def __init__(self, std_floor: float = 1e-8) -> None:
        self.std_floor = std_floor
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.feature_names: list[str] | None = None

    def fit(self, rows: np.ndarray | pd.DataFrame) -> Normalizer:
        """Fit on training rows only: (n_rows, F)."""
        if isinstance(rows, pd.DataFrame):
            self.feature_names = [str(c) for c in rows.columns]
        values = np.asarray(rows, dtype=np.float64)
        if values.ndim != 2 or len(values) == 0:
            raise ValueError(f"fit needs a non-empty (rows, F) array, got shape {values.shape}")
        self.mean = values.mean(axis=0)
        std = values.std(axis=0)
        self.std = np.where(std < self.std_floor, 1.0, std)
        return self

    def transform(self, values: np.ndarray | pd.DataFrame) -> np.ndarray | pd.DataFrame:
        """Standardise the last axis; a DataFrame comes back as a float32 DataFrame."""
        if self.mean is None or self.std is None:
            raise ValueError("Normalizer is not fitted: call fit(train_rows) or from_dict(config)")
        if isinstance(values, pd.DataFrame):
            names = [str(c) for c in values.columns]
            if self.feature_names is not None and names != self.feature_names:
                raise ValueError(
                    f"feature columns {names} differ from the fitted "
                    f"{self.feature_names}; compute features with the model's stored config"
                )
            out = self.transform(values.to_numpy())
            return pd.DataFrame(out, index=values.index, columns=values.columns)
        arr = np.asarray(values, dtype=np.float64)
        if arr.shape[-1] != len(self.mean):
            raise ValueError(f"expected {len(self.mean)} features (last axis), got {arr.shape}")
        return ((arr - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        if self.mean is None or self.std is None:
            raise ValueError("Normalizer is not fitted: nothing to store")
        return {
            "mean": self.mean.tolist(),
            "std": self.std.tolist(),
            "std_floor": self.std_floor,
            "feature_names": self.feature_names,
        }

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> Normalizer:
        norm = cls(float(config.get("std_floor", 1e-8)))
        norm.mean = np.asarray(config["mean"], dtype=np.float64)
        norm.std = np.asarray(config["std"], dtype=np.float64)
        names = config.get("feature_names")
        norm.feature_names = None if names is None else list(names)
        return norm


@dataclass(frozen=True)
class SequenceSplit:
    """Normalised train/val/test windows plus what serving and evaluation reuse."""

    train: WindowSet
    val: WindowSet
    test: WindowSet
    normalizer: Normalizer
    target_scale: np.ndarray  # (H,) std of train targets per horizon, float32
    generator: SequenceGenerator
    bounds: tuple[int, int]  # first val row, first test row (feature-row positions)


def _segment_sizes(n_rows: int, val_fraction: float, test_fraction: float) -> tuple[int, ...]:
    n_val, n_test = int(n_rows * val_fraction), int(n_rows * test_fraction)
    return n_rows - n_val - n_test, n_val, n_test


def _fits(
    n_rows: int, generator: SequenceGenerator, val_fraction: float, test_fraction: float
) -> bool:
    """Every segment with a positive fraction holds at least one window with its targets."""
    fractions = (1.0 - val_fraction - test_fraction, val_fraction, test_fraction)
    sizes = _segment_sizes(n_rows, val_fraction, test_fraction)
    return all(size >= generator.span for size, f in zip(sizes, fractions, strict=True) if f > 0)


def min_feature_rows(
    generator: SequenceGenerator, val_fraction: float = 0.15, test_fraction: float = 0.15
) -> int:
    """Feature rows from which on ``split_sequences`` accepts every length (add the
    engineer's ``warmup`` to get price rows)."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction} must be in [0, 1) "
            "and sum to less than 1"
        )
    shares = [f for f in (1.0 - val_fraction - test_fraction, val_fraction, test_fraction) if f > 0]
    # every length >= span / smallest share fits (+2 absorbs float rounding); walk down from there
    needed = int(np.ceil(generator.span / min(shares))) + 2
    while needed > 1 and _fits(needed - 1, generator, val_fraction, test_fraction):
        needed -= 1
    return needed


def segment_bounds(
    n_rows: int, generator: SequenceGenerator, val_fraction: float, test_fraction: float
) -> tuple[int, int]:
    """``(r1, r2)``: rows ``[0, r1)`` train, ``[r1, r2)`` val, ``[r2, n_rows)`` test.

    A fraction of 0 gives an empty segment. Raises ``ValueError`` (stating the rows needed)
    when a segment with a positive fraction has fewer than ``generator.span`` rows, i.e.
    cannot hold one window with all its targets.
    """
    needed = min_feature_rows(generator, val_fraction, test_fraction)
    if not _fits(n_rows, generator, val_fraction, test_fraction):
        raise ValueError(
            f"need at least {needed} feature rows for seq_len={generator.seq_len}, horizons up to "
            f"{generator.max_horizon} and val/test fractions {val_fraction}/{test_fraction} (each "
            f"segment needs seq_len + max horizon = {generator.span} rows); got {n_rows}: load a "
            "longer history or shrink seq_len/horizons"
        )
    n_train, n_val, _ = _segment_sizes(n_rows, val_fraction, test_fraction)
    return n_train, n_train + n_val


def target_std(y: np.ndarray) -> np.ndarray:
    """Per-horizon std of training targets (H,), float32, floored at 1e-8."""
    return np.maximum(y.astype(np.float64).std(axis=0), 1e-8).astype(np.float32)


def split_sequences(
    features: pd.DataFrame,
    close: pd.Series,
    generator: SequenceGenerator,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    normalizer: Normalizer | None = None,
) -> SequenceSplit:
    """Chronological, embargoed split of ``features`` (rows = dates) into normalised windows.

    The normaliser is fitted on the training rows, unless ``normalizer`` (one fitted on
    the training rows of several series) is given.

    ``close`` is aligned on ``features.index`` (it may cover a longer history). Targets of a
    window anchored at row ``t`` are ``log(close[t + h] / close[t])``, never reaching past the
    window's segment. ``y`` is left unscaled; divide by ``target_scale`` to train.
    """
    if not isinstance(features.index, pd.DatetimeIndex):
        raise ValueError(f"features need a DatetimeIndex, got {type(features.index).__name__}")
    close_aligned = close.reindex(features.index).to_numpy(dtype=np.float64)
    bad = ~(np.isfinite(close_aligned) & (close_aligned > 0))
    if bad.any():
        first = int(np.argmax(bad))
        raise ValueError(
            f"close must be positive on every features date; {features.index[first]} has "
            f"{close_aligned[first]!r}: pass the close series the features were computed from"
        )
    values = features.to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        cols = list(features.columns[~np.isfinite(values).all(axis=0)])
        raise ValueError(f"features {cols} contain NaN/inf: use TimeSeriesFeatureEngineer output")
    r1, r2 = segment_bounds(len(values), generator, val_fraction, test_fraction)
    train_input_end = r1 - generator.max_horizon  # rows after it only serve as train targets
    normalizer = normalizer or Normalizer().fit(features.iloc[:train_input_end])
    scaled = normalizer.transform(values)
    dates = features.index
    segments = [
        generator.windows(scaled[a:b], close_aligned[a:b], dates[a:b])
        for a, b in ((0, r1), (r1, r2), (r2, len(values)))
    ]
    target_scale = target_std(segments[0].y)
    logger.info(
        "split %d rows into %d/%d/%d windows (embargo %d rows)",
        len(values),
        *(len(s) for s in segments),
        generator.max_horizon,
    )
    return SequenceSplit(*segments, normalizer, target_scale, generator, (r1, r2))
