"""Training-only augmentation: seeded, shape-preserving, never mutates its input."""

from __future__ import annotations

import numpy as np
import pytest

from ml.state_space.features.augment import DataAugmentor


@pytest.fixture
def x_train() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(16, 30, 5)).astype(np.float32)


def test_same_seed_same_result_and_shape(x_train: np.ndarray) -> None:
    original = x_train.copy()
    first = DataAugmentor(seed=7).augment(x_train)
    second = DataAugmentor(seed=7).augment(x_train)
    np.testing.assert_array_equal(first, second)
    assert first.shape == x_train.shape and first.dtype == np.float32
    np.testing.assert_array_equal(x_train, original)  # input untouched
    assert not np.array_equal(first, DataAugmentor(seed=8).augment(x_train))


def test_successive_calls_differ_but_replay_with_the_seed(x_train: np.ndarray) -> None:
    augmentor, replay = DataAugmentor(seed=1), DataAugmentor(seed=1)
    epoch_1, epoch_2 = augmentor.augment(x_train), augmentor.augment(x_train)
    assert not np.array_equal(epoch_1, epoch_2)
    np.testing.assert_array_equal(epoch_2, (replay.augment(x_train), replay.augment(x_train))[1])


def test_disabled_augmentation_returns_an_equal_copy(x_train: np.ndarray) -> None:
    out = DataAugmentor(noise_std=0, magnitude_warp_std=0, feature_dropout=0).augment(x_train)
    np.testing.assert_array_equal(out, x_train)
    assert out is not x_train


def test_feature_dropout_zeroes_whole_feature_windows(x_train: np.ndarray) -> None:
    augmentor = DataAugmentor(noise_std=0, magnitude_warp_std=0, feature_dropout=0.5, seed=3)
    out = augmentor.augment(x_train)
    dropped = (out == 0).all(axis=1)  # (n, F)
    assert 0 < dropped.mean() < 1
    kept = ~dropped[:, None, :].repeat(x_train.shape[1], axis=1)
    np.testing.assert_array_equal(out[kept], x_train[kept])


def test_magnitude_warp_is_a_smooth_positive_curve() -> None:
    ones = np.ones((200, 60, 2))
    warped = DataAugmentor(noise_std=0, magnitude_warp_std=0.1, feature_dropout=0).augment(ones)
    assert abs(warped.mean() - 1.0) < 0.02 and (warped > 0).all()
    assert np.abs(np.diff(warped, axis=1)).max() < 0.2  # no jumps between steps
    assert warped.std(axis=1).mean() > 0.01  # varies over time within a window


@pytest.mark.parametrize(
    "kwargs", [{"noise_std": -0.1}, {"magnitude_warp_std": -1}, {"feature_dropout": 1.0}]
)
def test_invalid_settings_are_rejected(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        DataAugmentor(**kwargs)


def test_only_batches_of_windows_are_accepted() -> None:
    with pytest.raises(ValueError, match="seq_len"):
        DataAugmentor().augment(np.zeros((30, 5)))
