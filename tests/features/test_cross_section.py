"""Cross-sectional context on real universe prices: causal, the ranks and means it claims."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.state_space.data.bundled import sectors
from ml.state_space.data.sources import load_bundled
from ml.state_space.features.cross_section import CROSS_SECTION_FEATURES, CrossSection

SYMBOLS = (
    "AAPL", "MSFT", "KO", "PEP", "XOM", "CVX", "JPM", "BAC", "WMT", "HD",
    "PG", "JNJ", "PFE", "MRK", "INTC", "CSCO", "ORCL", "IBM", "T", "DIS",
)  # fmt: skip


@pytest.fixture(scope="module")
def universe() -> dict[str, pd.DataFrame]:
    return {s: load_bundled(s).loc["2014-01-01":"2016-12-31"] for s in SYMBOLS}


@pytest.fixture(scope="module")
def context(universe) -> CrossSection:
    return CrossSection.from_histories(universe, sectors())


def test_every_column_is_there_and_known_once_enough_members_have_returns(universe, context):
    features = context.features(universe["AAPL"], "AAPL")
    assert list(features.columns) == list(CROSS_SECTION_FEATURES)
    assert features.index.equals(universe["AAPL"].index)
    assert features.iloc[:20].isna().any(axis=1).all()  # 20-day returns need 20 rows
    assert np.isfinite(features.iloc[25:].to_numpy()).all()


def test_the_universe_mean_and_dispersion_are_the_members_own(universe, context):
    date = pd.Timestamp("2015-06-15")
    five_day = pd.Series(
        {s: np.log(p["close"].loc[:date].iloc[-1] / p["close"].loc[:date].iloc[-6])
         for s, p in universe.items()}
    )  # fmt: skip
    row = context.features(universe["MSFT"], "MSFT").loc[date]
    assert row["xs_mean_ret_5"] == pytest.approx(five_day.mean(), rel=1e-6)
    assert row["xs_dispersion_5"] == pytest.approx(five_day.std(ddof=1), rel=1e-5)
    tech = [s for s in SYMBOLS if sectors()[s] == "Information Technology"]
    expected = five_day[tech].mean() - five_day.mean()
    assert row["xs_sector_ret_5"] == pytest.approx(expected, rel=1e-5)


def test_a_members_rank_is_its_mid_rank_percentile(universe, context):
    date = pd.Timestamp("2016-03-01")
    twenty_day = pd.Series(
        {s: np.log(p["close"].loc[:date].iloc[-1] / p["close"].loc[:date].iloc[-21])
         for s, p in universe.items()}
    )  # fmt: skip
    expected = 2.0 * (twenty_day.rank() - 0.5) / len(twenty_day) - 1.0
    for symbol in ("AAPL", "XOM", "DIS"):
        row = context.features(universe[symbol], symbol).loc[date]
        assert row["xs_rank_20"] == pytest.approx(expected[symbol], abs=1e-6)


def test_an_unseen_symbol_is_ranked_against_the_members(universe, context):
    outsider = load_bundled("NVDA").loc["2014-01-01":"2016-12-31"]
    features = context.features(outsider, "NVDA")
    ranks = features["xs_rank_5"].dropna()
    assert len(ranks) > 600 and ranks.between(-1, 1).all()
    tech = context.features(universe["AAPL"], "AAPL")["xs_sector_ret_5"]
    pd.testing.assert_series_equal(features["xs_sector_ret_5"], tech)  # its sector's members
    assert context.features(outsider)["xs_sector_ret_5"].isna().all()  # no symbol: no sector
    assert context.features(outsider, "UNKNOWN")["xs_sector_ret_5"].isna().all()
    top = outsider["close"] * np.exp(np.arange(len(outsider)) * 0.05)  # beats everyone
    assert (context.features(outsider.assign(close=top))["xs_rank_5"].iloc[30:] == 1.0).all()


def test_dates_with_too_few_members_are_missing(universe):
    few = CrossSection.from_histories({s: universe[s] for s in SYMBOLS[:5]}, min_members=10)
    assert few.features(universe["AAPL"]).isna().all().all()


def test_the_context_never_looks_ahead(universe, context):
    cut = pd.Timestamp("2015-09-01")
    rng = np.random.default_rng(0)
    changed = {}
    for symbol, prices in universe.items():
        later = prices.index > cut
        shock = np.exp(rng.normal(0, 0.05, later.sum()))
        changed[symbol] = prices.copy()
        changed[symbol].loc[later, "close"] = prices.loc[later, "close"].to_numpy() * shock
    perturbed = CrossSection.from_histories(changed, sectors())
    for symbol in ("AAPL", "JPM"):
        before = context.features(universe[symbol], symbol).loc[:cut]
        after = perturbed.features(changed[symbol], symbol).loc[:cut]
        pd.testing.assert_frame_equal(before, after)
        assert (
            not context.features(universe[symbol], symbol)
            .loc[cut:]
            .equals(perturbed.features(changed[symbol], symbol).loc[cut:])
        )
