"""Blend with the baseline and per-quantile calibration, fitted on validation."""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from ml.state_space.models import postprocess
from ml.state_space.models.postprocess import QuantileCorrection, fit_correction, monotone_bands

LEVELS = (0.1, 0.5, 0.9)
Z = norm.ppf(LEVELS)


def _walk(shape: tuple[int, ...]) -> np.ndarray:
    """The random walk's quantiles in z units, (n, H, Q)."""
    return np.broadcast_to(Z, (*shape, len(LEVELS)))


def _outcomes(n: int = 4000, horizons: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    sigma = rng.uniform(0.5, 2.0, (n, horizons))  # what an informed model knows
    return rng.normal(size=(n, horizons)) * sigma, sigma


def test_a_model_without_skill_is_blended_away_to_the_random_walk():
    y = np.random.default_rng(0).normal(size=(4000, 2))  # the random walk's band is right
    garbage = np.sort(np.random.default_rng(1).normal(0, 3, (*y.shape, 3)), axis=-1)
    walk = _walk(y.shape)
    correction = fit_correction(garbage, y, walk, LEVELS, (1, 5))
    assert correction.blend_weight == (0.0, 0.0)
    np.testing.assert_allclose(correction.apply(garbage, walk), walk)


def test_the_blend_is_judged_against_the_baseline_it_is_given():
    """A network as good as the random walk is not served where a better baseline (here
    one that knows the volatility) is the fallback: all weight goes to that baseline."""
    y, sigma = _outcomes()
    informed = sigma[..., None] * Z
    walk_like = _walk(y.shape) + np.random.default_rng(2).normal(0, 0.05, (*y.shape, 1))
    correction = fit_correction(walk_like, y, informed, LEVELS, (1, 5))
    assert correction.blend_weight == (0.0, 0.0)
    np.testing.assert_allclose(correction.apply(walk_like, informed), informed)
    against_walk = fit_correction(informed, y, _walk(y.shape), LEVELS, (1, 5))
    assert min(against_walk.blend_weight) >= 0.9


def test_an_informed_model_keeps_its_weight():
    y, sigma = _outcomes()
    informed = sigma[..., None] * Z
    correction = fit_correction(informed, y, _walk(y.shape), LEVELS, (1, 5))
    assert min(correction.blend_weight) >= 0.9


def test_corrected_quantiles_never_cross_and_round_trip():
    correction = QuantileCorrection((1.0,), ((0.5, 0.0, -0.5),))
    crossing = correction.apply(np.array([[[-0.1, 0.0, 0.1]]]), _walk((1, 1)))
    assert (np.diff(crossing, axis=-1) >= 0).all()
    assert QuantileCorrection.from_dict(correction.to_dict()) == correction


def test_a_full_weight_and_no_shift_is_the_identity():
    y, sigma = _outcomes(200)
    quantiles = sigma[..., None] * Z
    walk = _walk(y.shape)
    correction = QuantileCorrection((1.0, 1.0), ((0.0, 0.0, 0.0),) * 2)
    np.testing.assert_allclose(correction.apply(quantiles, walk), quantiles)


def test_a_blend_that_is_not_significantly_better_falls_back_to_the_random_walk(monkeypatch):
    rng = np.random.default_rng(3)
    y = rng.normal(size=(60, 2))  # few windows: a small in-sample gain may be luck
    weak = Z + 0.5 * (0.2 * y + rng.normal(size=(60, 2)))[..., None]
    walk = _walk(y.shape)
    gated = fit_correction(weak, y, walk, LEVELS, (1, 5))
    assert gated.blend_weight == (0.0, 0.0)
    monkeypatch.setattr(postprocess, "BLEND_ALPHA", 1.0)  # without the significance gate
    ungated = fit_correction(weak, y, walk, LEVELS, (1, 5))
    assert min(ungated.blend_weight) > 0


def test_monotone_bands_widen_a_band_narrower_than_a_shorter_horizons():
    # horizons given out of order: 10 (narrow), 1, 5 (wide)
    quantiles = np.array([[[-0.01, 0.0, 0.01], [-0.02, 0.001, 0.01], [-0.03, 0.002, 0.05]]])
    widened = monotone_bands(quantiles, LEVELS, (10, 1, 5))
    np.testing.assert_allclose(widened[0, 1], quantiles[0, 1])  # h1: nothing shorter
    np.testing.assert_allclose(widened[0, 2], quantiles[0, 2])  # h5 already wider
    np.testing.assert_allclose(widened[0, 0], [-0.032, 0.0, 0.048])  # h10: h5's distances
    assert np.all(widened[..., 1] == quantiles[..., 1])  # medians untouched


def test_monotone_bands_keep_coherent_bands_and_missing_horizons():
    rng = np.random.default_rng(0)
    sigma = np.sqrt(np.array([1, 5, 10, 30]))[None, :, None]
    coherent = rng.normal(0, 0.01, (50, 4, 1)) + sigma * Z * 0.01
    np.testing.assert_allclose(monotone_bands(coherent, LEVELS, (1, 5, 10, 30)), coherent)
    coherent[:, 3] = np.nan  # a horizon past the data
    widened = monotone_bands(coherent, LEVELS, (1, 5, 10, 30))
    assert np.isnan(widened[:, 3]).all() and not np.isnan(widened[:, :3]).any()
