"""The baselines on real AAPL history: hand-computed values, calibration, GARCH behaviour."""

from __future__ import annotations

import json
import time
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest
from arch import arch_model
from scipy.stats import t as student_t

from ml.state_space.data.sources import load_bundled
from ml.state_space.models.base import forward_log_returns
from ml.state_space.models.baselines import Drift, EmpiricalQuantiles, RandomWalk
from ml.state_space.models.fallback import fallback_from_dict, fallback_to_dict
from ml.state_space.models.garch import DriftGarch, DriftGarchFHS, Garch

HORIZONS = (1, 5, 10, 30)
QUANTILES = (0.1, 0.5, 0.9)


@pytest.fixture(scope="module")
def aapl() -> pd.DataFrame:
    return load_bundled("AAPL")


@pytest.fixture(scope="module")
def train(aapl) -> pd.DataFrame:
    return aapl.loc[:"2009-12-31"]


@pytest.fixture(scope="module")
def test_origins(aapl) -> pd.DatetimeIndex:
    return aapl.loc["2010-01-01":"2019-12-31"].index


@pytest.fixture(scope="module")
def garch(train) -> Garch:
    return Garch(HORIZONS, QUANTILES).fit(train)


def h_day_returns(prices: pd.DataFrame, horizon: int) -> np.ndarray:
    log_close = np.log(prices["close"].to_numpy())
    return log_close[horizon:] - log_close[:-horizon]


def band_coverage(quantiles: np.ndarray, prices: pd.DataFrame, origins: pd.DatetimeIndex) -> float:
    """Share of 1-day outcomes inside the q0.1..q0.9 band (horizon index 0)."""
    actual = forward_log_returns(prices, 1)[prices.index.get_indexer(origins)]
    inside = (quantiles[:, 0, 0] <= actual) & (actual <= quantiles[:, 0, -1])
    return float(inside.mean())


def test_random_walk_band_covers_about_80_percent_of_one_day_moves(aapl, test_origins):
    forecaster = RandomWalk(HORIZONS, QUANTILES).fit(aapl)
    quantiles = forecaster.predict_quantiles(aapl, test_origins)
    assert 0.75 <= band_coverage(quantiles, aapl, test_origins) <= 0.85


def test_random_walk_quantiles_equal_z_sigma_sqrt_h_from_the_raw_closes(aapl):
    origin = pd.Timestamp("2012-05-15")
    row = aapl.index.get_loc(origin)
    closes = aapl["close"].to_numpy()[row - 60 : row + 1]  # 61 closes -> 60 returns
    sigma = np.std(np.diff(np.log(closes)), ddof=1)
    z = np.array([NormalDist().inv_cdf(q) for q in QUANTILES])
    expected = z[None, :] * sigma * np.sqrt(HORIZONS)[:, None]

    got = RandomWalk(HORIZONS, QUANTILES).predict_quantiles(aapl, pd.DatetimeIndex([origin]))
    np.testing.assert_allclose(got[0], expected, rtol=1e-9, atol=1e-15)
    assert (got[0, :, 1] == 0).all()


def test_random_walk_needs_window_plus_one_rows_before_the_origin(aapl):
    forecaster = RandomWalk(HORIZONS, QUANTILES, window=60)
    with pytest.raises(ValueError, match=r"60-day volatility needs 61"):
        forecaster.predict_quantiles(aapl, aapl.index[[100, 59]])
    assert np.isfinite(forecaster.predict_quantiles(aapl, aapl.index[[60]])).all()


def test_drift_median_is_the_training_mean_and_the_band_is_the_shifted_random_walk(aapl, train):
    origins = aapl.loc["2012-03-01":"2012-03-31"].index
    drift = Drift(HORIZONS, QUANTILES).fit(train).predict_quantiles(aapl, origins)
    means = np.array([h_day_returns(train, h).mean() for h in HORIZONS])

    np.testing.assert_allclose(drift[:, :, 1], np.broadcast_to(means, (len(origins), 4)))
    walk = RandomWalk(HORIZONS, QUANTILES).predict_quantiles(aapl, origins)
    np.testing.assert_allclose(drift - means[None, :, None], walk, atol=1e-15)


def test_drift_garch_is_the_garch_band_around_the_training_drift(aapl, train, garch):
    origins = aapl.loc["2012-03-01":"2012-03-31"].index
    combined = DriftGarch(HORIZONS, QUANTILES).fit(train).predict_quantiles(aapl, origins)
    means = np.array([h_day_returns(train, h).mean() for h in HORIZONS])
    np.testing.assert_allclose(combined[:, :, 1], np.broadcast_to(means, (len(origins), 4)))
    band = garch.predict_quantiles(aapl, origins)
    np.testing.assert_allclose(combined - means[None, :, None], band, atol=1e-15)


def test_fhs_band_is_the_quantiles_of_returns_standardised_by_arch(aapl, train, test_origins):
    """Filtered historical simulation: z_q(h) = quantiles of (r_h - drift) / sigma_h over
    the training origins, sigma_h from ``arch``'s forecasts with the fitted parameters;
    out of sample its 10-90% band covers 88-91% of AAPL's calmer 2010s."""
    fhs = DriftGarchFHS(HORIZONS, QUANTILES).fit(train)
    p = fhs.params_
    returns = 100 * np.diff(np.log(train["close"].to_numpy()))
    model = arch_model(returns, mean="Constant", vol="GARCH", p=1, q=1, dist="t", rescale=False)
    fixed = model.fix([p.mu, p.omega, p.alpha, p.beta, p.nu])
    variance = fixed.forecast(horizon=30, start=0, reindex=False).variance.to_numpy()
    h_day_std = np.sqrt(np.cumsum(variance, axis=1)[:, [0, 4, 9, 29]]) / 100  # origins 1..
    for h, horizon in enumerate(HORIZONS):
        standardised = (h_day_returns(train, horizon)[1:] - fhs.drift_[h]) / h_day_std[
            : len(train) - 1 - horizon, h
        ]
        expected = np.quantile(standardised, QUANTILES)
        np.testing.assert_allclose(fhs.shock_quantiles_[h], expected, atol=5e-3)

    quantiles = fhs.predict_quantiles(aapl, test_origins)
    for h, horizon in enumerate(HORIZONS):
        actual = forward_log_returns(aapl, horizon)[aapl.index.get_indexer(test_origins)]
        inside = (actual >= quantiles[:, h, 0]) & (actual <= quantiles[:, h, 2])
        assert 0.75 <= inside[~np.isnan(actual)].mean() <= 0.92, horizon


@pytest.mark.parametrize("fallback", [RandomWalk, Drift, DriftGarch, DriftGarchFHS])
def test_a_fitted_fallback_round_trips_through_its_card_state(fallback, aapl, train):
    fitted = fallback(HORIZONS, QUANTILES).fit(train)
    state = json.loads(json.dumps(fallback_to_dict(fitted)))  # as a model card stores it
    assert state["name"] == fitted.name
    origins = aapl.index[-20:]
    if fallback is Drift:  # a baseline, not a fallback: its state round-trips by class
        state.pop("name")
        restored = Drift.from_dict(state, HORIZONS, QUANTILES)
    else:
        restored = fallback_from_dict(state, HORIZONS, QUANTILES)
    np.testing.assert_array_equal(
        restored.predict_quantiles(aapl, origins), fitted.predict_quantiles(aapl, origins)
    )


def test_a_card_without_a_fallback_falls_back_to_the_random_walk(aapl):
    restored = fallback_from_dict(None, HORIZONS, QUANTILES)
    origins = aapl.index[-5:]
    expected = RandomWalk(HORIZONS, QUANTILES).predict_quantiles(aapl, origins)
    np.testing.assert_array_equal(restored.predict_quantiles(aapl, origins), expected)
    with pytest.raises(ValueError, match="unknown fallback 'oracle'"):
        fallback_from_dict({"name": "oracle"}, HORIZONS, QUANTILES)


def test_empirical_quantiles_are_numpy_quantiles_of_training_returns_with_zero_median(aapl, train):
    origins = aapl.loc["2015-06-01":"2015-06-30"].index
    got = EmpiricalQuantiles(HORIZONS, QUANTILES).fit(train).predict_quantiles(aapl, origins)
    for i, h in enumerate(HORIZONS):
        returns = h_day_returns(train, h)
        np.testing.assert_allclose(got[:, i, 0], np.quantile(returns, 0.1), rtol=1e-12)
        np.testing.assert_allclose(got[:, i, 2], np.quantile(returns, 0.9), rtol=1e-12)
    assert (got[:, :, 1] == 0).all()


def test_empirical_quantiles_are_clipped_to_stay_monotone_around_the_zero_median():
    days = pd.bdate_range("2020-01-01", periods=300)
    rising = pd.DataFrame({"close": np.exp(0.01 * np.arange(300))}, index=days)  # +1% a day
    got = EmpiricalQuantiles((1, 5), QUANTILES).fit(rising).predict_quantiles(rising, days[-3:])
    np.testing.assert_allclose(got[:, :, 0], 0.0)  # every return is positive: q0.1 -> 0
    np.testing.assert_allclose(got[:, :, 2], np.tile([0.01, 0.05], (3, 1)))


@pytest.mark.parametrize("model", [RandomWalk, Drift, EmpiricalQuantiles, Garch, DriftGarch])
@pytest.mark.parametrize(
    ("kwargs", "quoted"),
    [
        ({"horizons": (5, 1)}, r"\(5, 1\)"),
        ({"horizons": (0, 5)}, r"\(0, 5\)"),
        ({"horizons": (1.5,)}, r"\(1\.5,\)"),
        ({"quantiles": (0.9, 0.1)}, r"\(0\.9, 0\.1\)"),
        ({"quantiles": (0.0, 0.5)}, r"\(0\.0, 0\.5\)"),
        ({"quantiles": ()}, r"\(\)"),
    ],
)
def test_constructors_reject_bad_horizons_and_quantiles(model, kwargs, quoted):
    with pytest.raises(ValueError, match=quoted):
        model(**kwargs)


@pytest.mark.parametrize("model", [Drift, EmpiricalQuantiles, Garch, DriftGarch])
def test_predicting_before_fit_raises(model, aapl):
    with pytest.raises(RuntimeError, match=r"call fit\(prices\) first"):
        model().predict_quantiles(aapl, aapl.index[-5:])


def test_garch_band_widens_in_a_high_volatility_period(aapl, garch):
    calm, crisis = aapl.loc["2006-06"].index[10], aapl.loc["2008-10"].index[10]
    quantiles = garch.predict_quantiles(aapl, pd.DatetimeIndex([calm, crisis]))
    width = quantiles[:, :, -1] - quantiles[:, :, 0]
    assert (width[1] > 1.5 * width[0]).all(), width
    assert (quantiles[:, :, 1] == 0).all()


def test_garch_one_day_band_covers_70_to_90_percent_out_of_sample(aapl, garch, test_origins):
    quantiles = garch.predict_quantiles(aapl, test_origins)
    assert 0.7 <= band_coverage(quantiles, aapl, test_origins) <= 0.9


def test_garch_forecast_at_an_origin_ignores_later_prices(aapl, garch):
    origin = pd.Timestamp("2014-03-03")
    rng = np.random.default_rng(0)
    shaken = aapl.copy()
    later = shaken.index > origin
    shaken.loc[later, "close"] *= rng.uniform(0.5, 2.0, later.sum())

    before = garch.predict_quantiles(aapl, pd.DatetimeIndex([origin]))
    after = garch.predict_quantiles(shaken, pd.DatetimeIndex([origin]))
    np.testing.assert_array_equal(before, after)
    next_day = aapl.index[aapl.index.get_loc(origin) + 1]
    shifted = garch.predict_quantiles(shaken, pd.DatetimeIndex([next_day]))
    assert not np.allclose(shifted, garch.predict_quantiles(aapl, pd.DatetimeIndex([next_day])))


def test_garch_variance_filter_matches_arch_analytic_forecast(train, garch):
    """Our vectorised recursion gives ``arch``'s forecasts from the same parameters."""
    p = garch.params_
    returns = 100 * np.diff(np.log(train["close"].to_numpy()))
    model = arch_model(returns, mean="Constant", vol="GARCH", p=1, q=1, dist="t", rescale=False)
    fixed = model.fix([p.mu, p.omega, p.alpha, p.beta, p.nu])
    start = len(returns) - 250  # arch's row i forecasts from returns 0..i = price row i + 1
    variance = fixed.forecast(horizon=30, start=start, reindex=False).variance.to_numpy()
    h_day_std = np.sqrt(np.cumsum(variance, axis=1)[:, [4, 9, 29]]) / 100

    got = garch.predict_quantiles(train, train.index[start + 1 :])
    z = NormalDist().inv_cdf(0.9)
    np.testing.assert_allclose(got[:, 1:, 2], z * h_day_std, rtol=1e-9)
    t_unit = student_t.ppf(0.9, p.nu) * np.sqrt((p.nu - 2) / p.nu)  # h = 1: standardised t
    np.testing.assert_allclose(got[:, 0, 2], t_unit * np.sqrt(variance[:, 0]) / 100, rtol=1e-9)


def test_garch_window_fits_on_the_last_returns_only(aapl):
    windowed = Garch(window=1000).fit(aapl).params_
    assert windowed == Garch().fit(aapl.iloc[-1001:]).params_


def test_garch_needs_a_year_of_returns(aapl):
    with pytest.raises(ValueError, match=r"at least 250 daily returns.*got 99"):
        Garch().fit(aapl.iloc[:100])


def test_garch_fits_and_predicts_quickly(aapl):
    started = time.perf_counter()
    forecaster = Garch().fit(aapl)
    fitted = time.perf_counter()
    forecaster.predict_quantiles(aapl, aapl.index[-1250:])
    predicted = time.perf_counter()
    assert fitted - started < 3.0 and predicted - fitted < 0.5
