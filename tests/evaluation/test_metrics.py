import numpy as np
import pytest

from ml.state_space.evaluation.metrics import (
    directional_accuracy,
    evaluate_forecasts,
    horizon_metrics,
    pinball,
)

QUANTILES = (0.1, 0.5, 0.9)


def _quantiles_around(median: np.ndarray, width: float) -> np.ndarray:
    return np.stack([median - width, median, median + width], axis=-1)


def test_pinball_matches_definition():
    y = np.array([1.0, -1.0])
    assert pinball(y, np.zeros(2), 0.9) == pytest.approx((0.9 * 1 + 0.1 * 1) / 2)
    assert pinball(y, y, 0.3) == 0.0


def test_perfect_median_has_full_skill_and_zero_error():
    rng = np.random.default_rng(0)
    y = rng.normal(0, 0.02, 500)
    metrics = horizon_metrics(y, _quantiles_around(y, 0.01), QUANTILES, train_drift=0.001)
    assert metrics["mae"] == 0.0
    assert metrics["skill_vs_random_walk"] == pytest.approx(1.0)
    assert metrics["directional_accuracy"] == 1.0
    assert metrics["interval_coverage"] == 1.0


def test_zero_forecast_equals_random_walk():
    rng = np.random.default_rng(1)
    y = rng.normal(0, 0.02, 500)
    metrics = horizon_metrics(y, _quantiles_around(np.zeros_like(y), 0.02), QUANTILES, 0.0)
    assert metrics["skill_vs_random_walk"] == pytest.approx(0.0)
    assert metrics["random_walk"]["mae"] == pytest.approx(np.mean(np.abs(y)))
    assert metrics["skill_vs_drift"] == pytest.approx(0.0)


def test_coverage_counts_outcomes_below_each_quantile():
    y = np.linspace(-1, 1, 101)
    predictions = np.tile([-0.5, 0.0, 0.5], (101, 1))
    metrics = horizon_metrics(y, predictions, QUANTILES, 0.0)
    assert metrics["coverage"] == {
        "0.1": pytest.approx(26 / 101),
        "0.5": pytest.approx(51 / 101),
        "0.9": pytest.approx(76 / 101),
    }
    assert metrics["interval_coverage"] == pytest.approx(51 / 101)
    assert metrics["always_up_directional_accuracy"] == pytest.approx(50 / 100)


def test_evaluate_forecasts_keys_each_horizon():
    rng = np.random.default_rng(2)
    y = rng.normal(size=(50, 2))
    predictions = np.repeat(y[..., None], 3, axis=-1)
    result = evaluate_forecasts(y, predictions, (1, 5), QUANTILES, train_drift=[0.0, 0.0])
    assert set(result) == {"h1", "h5"}
    assert result["h5"]["n"] == 50


def test_empty_window_set_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        evaluate_forecasts(np.zeros((0, 1)), np.zeros((0, 1, 3)), (1,), QUANTILES, [0.0])


def test_directional_accuracy_and_always_up_use_the_same_windows():
    y_true = np.array([0.0, 0.0, 1.0, -1.0, 2.0])
    y_pred = np.array([1.0, -1.0, 1.0, 1.0, 0.0])
    model, always_up = directional_accuracy(y_true, y_pred)
    assert model == pytest.approx((1 + 0 + 0.5) / 3)
    assert always_up == pytest.approx(2 / 3)
    assert directional_accuracy(np.zeros(3), np.ones(3)) == (None, None)


def test_a_no_change_median_scores_exactly_as_the_random_walk():
    y = np.random.default_rng(3).normal(0, 0.02, 10_001).astype(np.float32)
    band = np.stack([y * 0 - 0.03, np.zeros_like(y, dtype=np.float64), y * 0 + 0.03], axis=1)
    metrics = horizon_metrics(y, band, (0.1, 0.5, 0.9), train_drift=0.001)
    assert metrics["skill_vs_random_walk"] == 0.0  # not -1e-7: no spurious "worse" flag
