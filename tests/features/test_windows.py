"""Windows, targets, normaliser and the embargoed chronological split."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ml.state_space.features.engineer import TimeSeriesFeatureEngineer
from ml.state_space.features.windows import (
    Normalizer,
    SequenceGenerator,
    SequenceSplit,
    min_feature_rows,
    split_sequences,
)


def synthetic(n_rows: int, n_features: int = 3, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    dates = pd.bdate_range("2000-01-03", periods=n_rows, name="date")
    features = pd.DataFrame(rng.normal(size=(n_rows, n_features)), index=dates)
    close = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, n_rows))), index=dates)
    return features, close


def positions(split: SequenceSplit, index: pd.Index, name: str) -> np.ndarray:
    return index.get_indexer(getattr(split, name).anchor_dates)


def test_windows_hold_the_rows_and_forward_log_returns_of_their_anchor() -> None:
    features, close = synthetic(400)
    generator = SequenceGenerator(seq_len=10, horizons=(1, 5, 30))
    split = split_sequences(features, close, generator)
    train = split.train
    assert train.x.dtype == np.float32 and train.x.shape[1:] == (10, 3)
    assert train.y.dtype == np.float32 and train.y.shape == (len(train), 3)
    i, t = 7, features.index.get_loc(train.anchor_dates[7])
    expected_x = split.normalizer.transform(features.to_numpy()[t - 9 : t + 1])
    np.testing.assert_allclose(train.x[i], expected_x, rtol=1e-6)
    expected_y = np.log(close.to_numpy()[[t + 1, t + 5, t + 30]] / close.iloc[t])
    np.testing.assert_allclose(train.y[i], expected_y, rtol=1e-5)
    assert train.last_close[i] == close.iloc[t]
    np.testing.assert_allclose(split.target_scale, train.y.std(axis=0), rtol=1e-5)


def test_stride_keeps_the_latest_window() -> None:
    features, close = synthetic(300)
    dense = split_sequences(features, close, SequenceGenerator(10, (1, 5)), 0.2, 0.2)
    sparse = split_sequences(features, close, SequenceGenerator(10, (1, 5), stride=4), 0.2, 0.2)
    assert sparse.test.anchor_dates[-1] == dense.test.anchor_dates[-1]
    assert sparse.test.anchor_dates.equals(dense.test.anchor_dates[::-1][::4][::-1])


@settings(max_examples=60, deadline=None)
@given(
    n_rows=st.integers(30, 700),
    seq_len=st.integers(1, 40),
    horizons=st.lists(st.integers(1, 40), min_size=1, max_size=4, unique=True).map(sorted),
    val_fraction=st.sampled_from([0.0, 0.1, 0.15, 0.2, 0.3]),
    test_fraction=st.sampled_from([0.0, 0.1, 0.15, 0.25]),
    seed=st.integers(0, 10),
)
def test_no_window_reaches_past_its_segment(
    n_rows: int,
    seq_len: int,
    horizons: list[int],
    val_fraction: float,
    test_fraction: float,
    seed: int,
) -> None:
    generator = SequenceGenerator(seq_len, tuple(horizons))
    needed = min_feature_rows(generator, val_fraction, test_fraction)
    features, close = synthetic(n_rows, seed=seed)
    try:
        split = split_sequences(features, close, generator, val_fraction, test_fraction)
    except ValueError as error:
        assert n_rows < needed and f"need at least {needed} feature rows" in str(error)
        return
    h = generator.max_horizon
    segments = [positions(split, features.index, s) for s in ("train", "val", "test")]
    assert len(segments[0]) > 0
    for earlier, later in itertools.combinations(segments, 2):
        if len(earlier) and len(later):  # embargo: later inputs start after earlier targets end
            assert later.min() - seq_len + 1 > earlier.max() + h
            assert later.min() - earlier.max() >= h + seq_len

    # perturb everything after each boundary: what lies before it must not change
    r1, r2 = split.bounds
    for boundary, frozen in ((r1, ["train"]), (r2, ["train", "val"])):
        changed_features, changed_close = features.copy(), close.copy()
        changed_features.iloc[boundary:] += 5.0
        changed_close.iloc[boundary:] *= 3.0
        other = split_sequences(
            changed_features, changed_close, generator, val_fraction, test_fraction
        )
        for name in frozen:
            np.testing.assert_array_equal(getattr(split, name).x, getattr(other, name).x)
            np.testing.assert_array_equal(getattr(split, name).y, getattr(other, name).y)
        assert split.normalizer.to_dict() == other.normalizer.to_dict()
        np.testing.assert_array_equal(split.target_scale, other.target_scale)


def test_normaliser_is_fitted_on_train_inputs_only() -> None:
    features, close = synthetic(500)
    generator = SequenceGenerator(20, (1, 10))
    split = split_sequences(features, close, generator)
    train_end = features.index.get_loc(split.train.anchor_dates[-1]) + 1
    expected = features.iloc[:train_end]
    np.testing.assert_allclose(split.normalizer.mean, expected.mean(), rtol=1e-12)
    np.testing.assert_allclose(split.normalizer.std, expected.std(ddof=0), rtol=1e-12)
    spoiled = features.copy()
    spoiled.iloc[train_end:] = 1e6  # embargo rows, validation and test
    again = split_sequences(spoiled, close, generator)
    assert again.normalizer.to_dict() == split.normalizer.to_dict()


def test_real_prices_split_is_leak_free(bundled_prices: pd.DataFrame) -> None:
    """End to end on AAPL: moving prices after the train segment leaves train untouched."""
    prices = bundled_prices.iloc[-2000:]
    engineer = TimeSeriesFeatureEngineer()
    generator = SequenceGenerator()
    split = split_sequences(engineer.transform(prices), prices["close"], generator)
    boundary = engineer.warmup + split.bounds[0]  # first price row of the val segment
    changed = prices.copy()
    changed.iloc[boundary:, 0] *= np.linspace(1.0, 2.0, len(prices) - boundary)
    other = split_sequences(engineer.transform(changed), changed["close"], generator)
    np.testing.assert_array_equal(split.train.x, other.train.x)
    np.testing.assert_array_equal(split.train.y, other.train.y)
    assert not np.array_equal(split.val.y, other.val.y)


def test_normalizer_round_trips_through_json() -> None:
    features, _ = synthetic(50)
    features[3] = 2.0  # a constant column is only centred
    norm = Normalizer().fit(features)
    assert norm.std[3] == 1.0
    restored = Normalizer.from_dict(json.loads(json.dumps(norm.to_dict())))
    pd.testing.assert_frame_equal(restored.transform(features), norm.transform(features))
    with pytest.raises(ValueError, match="differ from the fitted"):
        restored.transform(features[[1, 0, 2, 3]])
    with pytest.raises(ValueError, match="not fitted"):
        Normalizer().transform(features.to_numpy())


def test_too_short_history_says_how_many_rows_are_needed() -> None:
    generator = SequenceGenerator(60, (1, 5, 10, 30))
    needed = min_feature_rows(generator)
    assert needed == 600  # 90 rows (60 inputs + 30 ahead) must fit in 15 %
    split_sequences(*synthetic(needed), generator)
    with pytest.raises(ValueError, match=f"need at least {needed} feature rows.*got {needed - 1}"):
        split_sequences(*synthetic(needed - 1), generator)


@pytest.mark.parametrize(
    "kwargs", [{"seq_len": 0}, {"horizons": ()}, {"horizons": (5, 1)}, {"stride": 0}]
)
def test_invalid_generator_settings_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        SequenceGenerator(**kwargs)
