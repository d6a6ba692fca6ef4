"""Cross-sectional IC, quintile spread and the per-sector table, against hand-made cases
and statsmodels' Newey-West."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from ml.state_space.evaluation.cross_section import (
    cross_section_table,
    daily_ic,
    daily_quintile_spread,
    newey_west_t,
    sector_table,
)


def panel(median: np.ndarray, actual: np.ndarray, model: str = "m", horizon: int = 5):
    """Forecast rows for (dates x symbols) arrays of q0.5 and outcome."""
    dates = pd.bdate_range("2020-01-01", periods=median.shape[0])
    symbols = [f"S{j:02d}" for j in range(median.shape[1])]
    return pd.DataFrame(
        {
            "model": model,
            "symbol": np.tile(symbols, len(dates)),
            "origin_date": np.repeat(dates, len(symbols)),
            "horizon": horizon,
            "q0.5": median.ravel(),
            "actual": actual.ravel(),
        }
    )


@pytest.mark.parametrize("lags", [0, 4, 9])
def test_newey_west_t_matches_statsmodels(lags: int) -> None:
    rng = np.random.default_rng(lags)
    series = 0.02 + np.convolve(rng.normal(size=400), np.ones(5) / 5, mode="same")
    fit = sm.OLS(series, np.ones(series.size)).fit(
        cov_type="HAC", cov_kwds={"maxlags": lags, "use_correction": False}
    )
    assert newey_west_t(series, lags) == pytest.approx(fit.tvalues[0], rel=1e-10)


def test_an_oracle_ranks_perfectly_and_noise_does_not() -> None:
    rng = np.random.default_rng(0)
    actual = rng.normal(size=(250, 30))
    oracle = daily_ic(panel(actual * 2 + 1, actual))
    assert len(oracle) == 250 and np.allclose(oracle, 1.0)
    noise = daily_ic(panel(rng.normal(size=(250, 30)), actual))
    assert abs(noise.mean()) < 0.03


def test_one_median_for_every_symbol_ranks_nothing() -> None:
    actual = np.random.default_rng(1).normal(size=(20, 12))
    flat = panel(np.zeros_like(actual), actual, model="rw")
    assert daily_ic(flat).empty and daily_quintile_spread(flat).empty
    row = cross_section_table(flat).iloc[0]
    assert row["dates"] == 0 and math.isnan(row["mean_ic"]) and math.isnan(row["ic_t"])


def test_the_quintile_spread_is_top_fifth_minus_bottom_fifth_simple_returns() -> None:
    median = np.tile(np.arange(10.0), (3, 1))  # S09 ranked top, S00 bottom
    actual = np.log1p(np.tile(np.linspace(-0.09, 0.09, 10), (3, 1)))
    spread = daily_quintile_spread(panel(median, actual))
    top, bottom = np.mean([0.07, 0.09]), np.mean([-0.09, -0.07])
    assert np.allclose(spread, top - bottom)
    assert daily_quintile_spread(panel(median[:, :9], actual[:, :9])).empty  # < 10 names


def test_the_table_reports_mean_ic_and_spread_with_their_t() -> None:
    rng = np.random.default_rng(2)
    actual = rng.normal(0, 0.02, size=(300, 20))
    skilled = actual + rng.normal(0, 0.04, size=actual.shape)
    row = cross_section_table(panel(skilled, actual)).iloc[0]
    assert row["dates"] == 300 and 0.3 < row["mean_ic"] < 0.6
    assert row["ic_t"] > 10 and row["quintile_spread"] > 0 and row["quintile_spread_t"] > 5


def test_ic_within_each_sector() -> None:
    actual = np.random.default_rng(3).normal(size=(50, 12))
    median = actual.copy()
    median[:, 6:] = -actual[:, 6:]  # the second sector's ranking is backwards
    frame = panel(median, actual)
    sectors = {f"S{j:02d}": ("Energy" if j < 6 else "Utilities") for j in range(12)}
    table = sector_table(frame, sectors).set_index("sector")
    assert table.loc["Energy", "mean_ic"] == pytest.approx(1.0)
    assert table.loc["Utilities", "mean_ic"] == pytest.approx(-1.0)
    assert (table["symbols"] == 6).all() and (table["dates"] == 50).all()
