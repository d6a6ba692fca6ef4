import math

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

from ml.state_space.significance import diebold_mariano, long_run_variance


def test_hac_variance_matches_statsmodels_uniform_kernel():
    rng = np.random.default_rng(0)
    d = rng.normal(0.1, 1.0, 200)
    ols = sm.OLS(d, np.ones_like(d)).fit(
        cov_type="HAC", cov_kwds={"maxlags": 4, "kernel": "uniform"}
    )
    assert math.sqrt(long_run_variance(d, 4) / d.size) == pytest.approx(ols.bse[0], rel=1e-10)
    bartlett = sm.OLS(d, np.ones_like(d)).fit(cov_type="HAC", cov_kwds={"maxlags": 4})
    assert math.sqrt(long_run_variance(d, 4, bartlett=True) / d.size) == pytest.approx(
        bartlett.bse[0], rel=1e-10
    )


def test_dm_statistic_by_hand_with_hln_correction():
    a = np.array([1.0, 2.0, 0.5, 1.5, 3.0, 0.2, 1.1, 0.9])
    b = np.array([0.8, 1.0, 0.7, 1.0, 1.0, 0.4, 1.0, 0.5])
    d, n, h = a - b, 8, 2
    centred = d - d.mean()
    gamma0 = centred @ centred / n
    gamma1 = centred[1:] @ centred[:-1] / n
    dm = d.mean() / math.sqrt((gamma0 + 2 * gamma1) / n)
    hln = dm * math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    result = diebold_mariano(a, b, horizon=h)
    assert result.statistic == pytest.approx(hln)
    assert result.pvalue == pytest.approx(2 * stats.t.sf(abs(hln), df=n - 1))
    assert result.mean_difference == pytest.approx(d.mean())
    assert result.n == n


def test_sign_says_which_forecast_is_better_and_power_grows_with_the_gap():
    rng = np.random.default_rng(1)
    noise = rng.normal(size=500)
    good, bad = np.abs(noise), np.abs(noise) + 0.2 + 0.1 * rng.normal(size=500)
    result = diebold_mariano(good, bad, horizon=5)
    assert result.statistic < 0 and result.pvalue < 1e-6
    same = diebold_mariano(np.abs(noise), np.abs(noise[::-1]), horizon=1)
    assert same.pvalue > 0.05


def test_negative_rectangular_variance_falls_back_to_bartlett():
    d = np.array([1.0, -1.0] * 10) + np.linspace(0, 0.1, 20)
    assert long_run_variance(d, 3) < 0
    result = diebold_mariano(d, np.zeros_like(d), horizon=4)
    assert math.isfinite(result.statistic)


def test_identical_forecasts_have_nothing_to_test():
    loss = np.arange(10.0)
    result = diebold_mariano(loss, loss, horizon=3)
    assert math.isnan(result.statistic) and math.isnan(result.pvalue)
    with pytest.raises(ValueError, match="equal in length"):
        diebold_mariano(loss, loss[:5])
