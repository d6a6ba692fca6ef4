"""Artefact detection on the universe's real glitches; real crashes are left alone."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from ml.state_space.data.artefacts import (
    find_artefacts,
    flagged_dates,
    screen,
    touches_flagged,
)
from ml.state_space.data.bundled import load_bundled, universe_bars, universe_symbols

BIG_MOVE_KINDS = ("miscoded_action", "unadjusted_action", "other_security", "reversal")


def kinds_on(symbol: str, day: str) -> set[str]:
    return {a.kind for a in find_artefacts(symbol, universe_bars(symbol)) if a.date == day}


@pytest.mark.parametrize(
    ("symbol", "day", "kind"),
    [
        ("GNRC", "2010-02-12", "miscoded_action"),  # spurious split coefficient 0.3036
        ("ANTM", "2002-03-18", "miscoded_action"),  # split 2.0, no raw move
        ("KSU", "2000-07-13", "miscoded_action"),  # spin-off coded as a $181 dividend
        ("MSI", "2011-01-04", "miscoded_action"),  # reverse split coded, spin-off not
        ("WST", "2004-09-30", "unadjusted_action"),  # 2:1 split not recorded
        ("ANTM", "2005-06-02", "unadjusted_action"),  # 2:1 split not recorded
        ("FMC", "2002-01-02", "unadjusted_action"),  # spin-off not adjusted
        ("ANTM", "2001-10-30", "other_security"),  # Anthem's IPO; earlier rows are not it
        ("ALXN", "2000-03-30", "reversal"),  # a bad print, undone the next day
        ("AAPL", "2003-01-29", "stale_bar"),  # 274 symbols repeat 2003-01-28
        ("ODFL", "1999-11-02", "flat_zero_volume"),
    ],
)
def test_each_kind_is_found_on_its_real_example(symbol: str, day: str, kind: str) -> None:
    assert kind in kinds_on(symbol, day)


@pytest.mark.parametrize(
    ("symbol", "day"),
    [
        ("AAPL", "2000-09-29"),
        ("AIG", "2008-09-15"),
        ("APA", "2020-03-09"),
        ("FANG", "2020-03-09"),
        ("MRO", "2020-03-09"),
        ("OXY", "2020-03-09"),
        ("DVN", "2020-03-09"),
    ],
)
def test_real_crashes_are_not_artefacts(symbol: str, day: str) -> None:
    assert kinds_on(symbol, day) == set()


def test_missing_sessions_are_flagged_on_the_bar_after_the_gap() -> None:
    found = [a for a in find_artefacts("KIM", universe_bars("KIM")) if a.kind == "missing_sessions"]
    assert len(found) == 3
    bars = universe_bars("KIM")
    for artefact in found:
        gap = artefact.detail.removeprefix("no bar on session ")
        assert pd.Timestamp(gap) not in bars.index
        assert bars.index[bars.index.searchsorted(pd.Timestamp(gap))] == pd.Timestamp(artefact.date)


@pytest.fixture(scope="module")
def universe_audit() -> list:
    return [a for s in universe_symbols() for a in find_artefacts(s, universe_bars(s))]


def test_the_universe_counts_match_its_audit(universe_audit) -> None:
    """README_UNIVERSE.md's audit: 274 symbols repeat 2003-01-28 on 2003-01-29, 135 flat
    zero-volume bars, 15 missing sessions (SPGI 6, VIAC 5, KIM 3, RHI 1)."""
    stale_day = [a for a in universe_audit if a.kind == "stale_bar" and a.date == "2003-01-29"]
    assert len(stale_day) == 274
    assert sum(a.kind == "flat_zero_volume" for a in universe_audit) == 135
    missing = Counter(a.symbol for a in universe_audit if a.kind == "missing_sessions")
    assert missing == {"SPGI": 6, "VIAC": 5, "KIM": 3, "RHI": 1}
    big = {(a.symbol, a.date) for a in universe_audit if a.kind in BIG_MOVE_KINDS}
    assert ("ANTM", "2001-10-30") in big and len(big) == 9 + 7  # README's 9, and 7 reversals


def test_flagged_dates_take_the_day_after_a_stale_bar() -> None:
    bars = universe_bars("AAPL")
    days = flagged_dates(find_artefacts("AAPL", bars), bars.index)
    assert list(days) == [pd.Timestamp("2003-01-29"), pd.Timestamp("2003-01-30")]
    antm = find_artefacts("ANTM", universe_bars("ANTM"))
    assert pd.Timestamp("2005-06-02") in flagged_dates(antm, universe_bars("ANTM").index)


def test_close_only_data_gets_the_rules_its_columns_allow() -> None:
    close = load_bundled("RRC").iloc[-300:]
    assert {a.kind for a in find_artefacts("RRC", close)} <= {"missing_sessions"}
    gapped = close.drop(close.index[100])
    found = find_artefacts("RRC", gapped)
    assert [a.date for a in found] == [f"{close.index[101]:%Y-%m-%d}"]


def test_a_synthetic_unrecorded_split_is_found_and_a_crash_with_volume_is_not() -> None:
    days = pd.bdate_range("2019-01-02", periods=60)
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 60)))
    bars = pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close},
        index=days,
    )
    bars["volume"] = 1e6
    bars.iloc[40:, :4] /= 2  # a 2:1 split nobody adjusted: the whole move in the gap
    assert [a.kind for a in find_artefacts("X", bars) if a.date == f"{days[40]:%Y-%m-%d}"] == [
        "unadjusted_action"
    ]
    bars.iloc[40, 4] = 2e7  # the same fall, on 20x the volume and swinging within the day,
    bars.iloc[40, 0] *= 1.3  # is news, not an artefact
    bars.iloc[40, 1] = bars.iloc[40, 0]
    bars.iloc[40, 2] = bars.iloc[40, 3] * 0.95
    assert not find_artefacts("X", bars)


def test_screen_starts_a_history_at_its_last_price_level_artefact() -> None:
    antm = load_bundled("ANTM")
    screened = screen("ANTM", antm)
    assert screened.prices.index[0] == pd.Timestamp("2005-06-02")
    assert screened.prices.attrs["starts_after_artefact"] == "2005-06-02"
    assert screened.prices.attrs["dataset"] == "sp500-universe"
    assert screen("ANTM", screened.prices).prices is screened.prices  # screened once
    before = screen("ANTM", antm.loc[:"2002-01-31"])  # another security's rows, then Anthem
    assert before.prices.index[0] == pd.Timestamp("2001-10-30")


def test_screen_keeps_one_day_artefacts_and_flags_them() -> None:
    screened = screen("AAPL", load_bundled("AAPL"))
    assert len(screened.prices) == len(load_bundled("AAPL"))
    assert screened.prices.attrs["flagged"] == ["2003-01-29", "2003-01-30"]


def test_touches_flagged_counts_the_input_window_and_the_target() -> None:
    index = pd.bdate_range("2020-01-01", periods=30)
    flagged = index[[10]]
    hits = touches_flagged(index, flagged, index, horizon=2, lookback=3)
    # origin t touches row 10 when t - 3 < 10 <= t + 2, i.e. t in 8..12
    assert list(np.flatnonzero(hits)) == [8, 9, 10, 11, 12]


def test_a_bar_no_trade_could_make_is_flagged_and_kept_out_of_scoring() -> None:
    days = pd.bdate_range("2019-01-02", periods=30)
    close = np.linspace(100, 110, 30)
    bars = pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close}, index=days
    )
    assert not find_artefacts("X", bars)
    bars.iloc[10, 1], bars.iloc[10, 2] = bars.iloc[10, 2], bars.iloc[10, 1]  # high below low
    bars.iloc[20, 3] = bars.iloc[20, 1] * 3  # a close three times the high
    found = [(a.date, a.kind) for a in find_artefacts("X", bars)]
    assert found == [
        (f"{days[10]:%Y-%m-%d}", "inconsistent_bar"),
        (f"{days[20]:%Y-%m-%d}", "inconsistent_bar"),
    ]
    assert "high must be at least low" in find_artefacts("X", bars)[0].detail
    flagged = pd.DatetimeIndex(screen("X", bars).prices.attrs["flagged"])
    assert {days[10], days[20]} <= set(flagged)
