"""Real-data artefacts: days whose bar is not what traded, found from the bars themselves.

Each kind has one rule, set on the real cases of the bundled universe
(``resources/NOTICE_UNIVERSE.md``; the audit in docs/DATA.md) and kept narrow enough that
real crashes (AAPL 2000-09-29, AIG 2008-09-15, the oil names on 2020-03-09) stay in:

- ``miscoded_action``: an adjusted move beyond 0.4 (log) on a day with a coded split or a
  dividend over 5% of the price: the code does not match what happened (GNRC 2010-02-12,
  ANTM 2002-03-18, KSU 2000-07-13, MSI 2011-01-04, SO 2001-04-03);
- ``unadjusted_action``: a fall beyond 0.4 with nothing coded, all of it in the opening gap
  (close within 5% of open) and on ordinary volume (under 3.5x its 20-day median): a split
  or spin-off not adjusted (WST 2004-09-30, ANTM 2005-06-02, FMC 2002-01-02). A crash moves
  within the day or trades heavily;
- ``other_security``: a move beyond 0.69 (a halving or doubling) with nothing coded, on heavy
  volume (an unadjusted split trades calmly) but a high-low range under 1.5x its 20-day
  median (a crash swings within the day): another security's rows end there, the new
  one's first day trades (ANTM before 2001-10-30);
- ``reversal``: a move beyond 0.2 undone to within a tenth the next day, on ordinary volume
  (under 2x its median): a bad print (ALXN 2000-03-30);
- ``stale_bar``: open, high, low and close all equal to the previous bar's, not a flat bar
  (2003-01-29);
- ``flat_zero_volume``: no volume and open = high = low = close (ODFL 1999-2002);
- ``inconsistent_bar``: high below low, or the open or close outside [low, high] (beyond a
  millionth, for rounding): a bar no trade could make (none in the bundled universe; a
  user's file may have them);
- ``missing_sessions``: NYSE sessions with no bar; flagged on the bar after the gap.

Rules that need columns a frame lacks (close-only data has no range or volume) are skipped.

**The policy** (:func:`screen`, applied to every history a training run or backtest
loads; docs/DATA.md): the first three kinds shift the price level, so a history starts at
the last of them (the returns before it are not this stock's, or not adjusted); the
one-day kinds stay in the history, and every forecast whose input window or target
touches one (:func:`touches_flagged`) is left out of scoring.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml.state_space.data.bundled import UNIVERSE, universe_bars
from ml.state_space.data.calendar import sessions

__all__ = [
    "KINDS",
    "Artefact",
    "Screened",
    "audit",
    "find_artefacts",
    "flagged_dates",
    "screen",
    "touches_flagged",
]

LEVEL_KINDS = ("miscoded_action", "unadjusted_action", "other_security")
KINDS = (
    "miscoded_action",
    "unadjusted_action",
    "other_security",
    "reversal",
    "stale_bar",
    "flat_zero_volume",
    "inconsistent_bar",
    "missing_sessions",
)
BIG_MOVE = 0.4
HALVING = 0.69
REVERSAL_MOVE = 0.2
MATERIAL_DIVIDEND = 0.05
CALM_VOLUME = 3.5
CALM_RANGE = 1.5
ORDINARY_VOLUME = 2.0
MEDIAN_DAYS = 20
ROUNDING = 1e-6  # a relative slack for high/low comparisons


@dataclass(frozen=True)
class Artefact:
    """One flagged bar: ``date`` (``YYYY-MM-DD``), its ``kind`` and the numbers behind it."""

    symbol: str
    date: str
    kind: str
    detail: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return asdict(self)


def _trailing_median(values: pd.Series) -> pd.Series:
    """The median of the previous :data:`MEDIAN_DAYS` values (not today's)."""
    return values.shift(1).rolling(MEDIAN_DAYS, min_periods=5).median()


def _coded_action(bars: pd.DataFrame) -> pd.Series:
    """Rows with a split or a material dividend coded (all ``False`` without those columns)."""
    if not {"split", "dividend", "raw_close"} <= set(bars.columns):
        return pd.Series(False, index=bars.index)
    dividend_share = bars["dividend"] / bars["raw_close"].shift(1)
    return (bars["split"] != 1.0) | (dividend_share > MATERIAL_DIVIDEND)


def _has(bars: pd.DataFrame, *columns: str) -> bool:
    return set(columns) <= set(bars.columns)


def _as_traded(bars: pd.DataFrame) -> pd.DataFrame:
    """Open, high, low, close as traded when known (equality survives no adjusting)."""
    raw = ["raw_open", "raw_high", "raw_low", "raw_close"]
    if _has(bars, *raw):
        return bars[raw].set_axis(["open", "high", "low", "close"], axis=1)
    return bars[["open", "high", "low", "close"]]


Rule = tuple[pd.Series, Callable[[pd.Timestamp], str]]


def _rules(bars: pd.DataFrame) -> dict[str, Rule]:
    """Per kind: the flagged rows, and the detail text of a flagged row."""
    move = np.log(bars["close"]).diff()
    coded = _coded_action(bars)

    def moved(day: pd.Timestamp) -> str:
        return f"log return {move[day]:+.3f}"

    rules: dict[str, Rule] = {}
    if _has(bars, "split", "dividend", "raw_close"):
        rules["miscoded_action"] = (
            (move.abs() > BIG_MOVE) & coded,
            lambda d: f"{moved(d)}, split {bars.at[d, 'split']:g}, "
            f"dividend {bars.at[d, 'dividend']:g}",
        )
    if _has(bars, "open", "high", "low", "volume"):
        volume_ratio = bars["volume"] / _trailing_median(bars["volume"])
        day_range = np.log(bars["high"] / bars["low"])
        range_ratio = day_range / _trailing_median(day_range)
        in_gap = np.log(bars["close"] / bars["open"]).abs() < 0.05
        rules["unadjusted_action"] = (
            (move < -BIG_MOVE) & ~coded & in_gap & (volume_ratio < CALM_VOLUME),
            lambda d: f"{moved(d)}, all in the opening gap, volume x{volume_ratio[d]:.2f}",
        )
        rules["other_security"] = (
            (move.abs() > HALVING) & ~coded & (range_ratio < CALM_RANGE)
            & (volume_ratio >= CALM_VOLUME),
            lambda d: f"{moved(d)}, high-low range x{range_ratio[d]:.2f} its median",
        )
        undone = (move + move.shift(-1)).abs() < 0.1 * move.abs()
        rules["reversal"] = (
            (move.abs() > REVERSAL_MOVE) & undone & (volume_ratio < ORDINARY_VOLUME),
            lambda d: f"{moved(d)}, next day {move.shift(-1)[d]:+.3f}",
        )
    if _has(bars, "open", "high", "low"):
        ohlc = _as_traded(bars)
        flat = ohlc.eq(ohlc["close"], axis=0).all(axis=1)
        rules["stale_bar"] = (
            (ohlc == ohlc.shift(1)).all(axis=1) & ~flat,
            lambda d: "open, high, low and close as on the previous bar",
        )
        if "volume" in bars.columns:
            rules["flat_zero_volume"] = (
                (bars["volume"] == 0) & flat,
                lambda d: "no volume, open = high = low = close",
            )
        high, low = ohlc["high"] * (1 + ROUNDING), ohlc["low"] * (1 - ROUNDING)
        rules["inconsistent_bar"] = (
            (high < low) | (ohlc[["open", "close"]].gt(high, axis=0)).any(axis=1)
            | (ohlc[["open", "close"]].lt(low, axis=0)).any(axis=1),
            lambda d: "open {:g}, high {:g}, low {:g}, close {:g}: high must be at least low, "
            "open and close within them".format(*ohlc.loc[d, ["open", "high", "low", "close"]]),
        )
    return rules


def _missing_sessions(index: pd.DatetimeIndex) -> list[tuple[pd.Timestamp, str]]:
    expected = sessions()
    expected = expected[(expected >= index[0]) & (expected <= index[-1])]
    missing = expected.difference(index)
    found = []
    for day in missing:
        after = index[index.searchsorted(day)]
        found.append((after, f"no bar on session {day:%Y-%m-%d}"))
    return found


def find_artefacts(symbol: str, bars: pd.DataFrame) -> list[Artefact]:
    """Every artefact in ``bars`` (a price frame; with ``raw_close``/``split``/``dividend``
    columns, as :func:`~ml.state_space.data.bundled.universe_bars` gives, the coded-action
    rule runs too), in date order."""
    found = []
    for kind, (hit, detail) in _rules(bars).items():
        for day in bars.index[hit.fillna(False).to_numpy(dtype=bool)]:
            found.append(Artefact(symbol, f"{day:%Y-%m-%d}", kind, detail(day)))
    for day, detail in _missing_sessions(pd.DatetimeIndex(bars.index)):
        found.append(Artefact(symbol, f"{day:%Y-%m-%d}", "missing_sessions", detail))
    return sorted(found, key=lambda a: (a.date, KINDS.index(a.kind)))


def audit(symbol: str, prices: pd.DataFrame) -> list[Artefact]:
    """The artefacts of a loaded frame; a bundled-universe frame is audited as traded."""
    if prices.attrs.get("dataset") == UNIVERSE:
        return find_artefacts(symbol, universe_bars(symbol, prices.index[0], prices.index[-1]))
    return find_artefacts(symbol, prices)


@dataclass(frozen=True)
class Screened:
    """A history after the policy: ``prices`` from the last level artefact on, the one-day
    artefacts' ``flagged`` days (to leave out of scoring) and what was found after the
    cut (empty for a frame screened before)."""

    prices: pd.DataFrame
    flagged: pd.DatetimeIndex
    artefacts: list[Artefact]


def screen(symbol: str, prices: pd.DataFrame) -> Screened:
    """Apply the policy to ``prices``: start at the last level artefact, flag the rest.

    The returned frame's ``attrs`` add ``flagged`` (the one-day artefacts' days, ISO
    dates, read by the backtest's scoring) and, after a cut, ``starts_after_artefact``.
    Screening a screened frame changes nothing.
    """
    if "flagged" in prices.attrs:  # screened already
        flagged = pd.DatetimeIndex(prices.attrs["flagged"])
        return Screened(prices, flagged, [])
    artefacts = audit(symbol, prices)
    starts = [pd.Timestamp(a.date) for a in artefacts if a.kind in LEVEL_KINDS]
    attrs = dict(prices.attrs)
    if starts:
        start = max(starts)
        prices = prices.loc[start:]
        artefacts = [a for a in artefacts if pd.Timestamp(a.date) > start]
        attrs["starts_after_artefact"] = f"{start:%Y-%m-%d}"
    else:
        prices = prices.iloc[:]
    flagged = flagged_dates([a for a in artefacts if a.kind not in LEVEL_KINDS], prices.index)
    prices.attrs = {**attrs, "flagged": [f"{d:%Y-%m-%d}" for d in flagged]}
    return Screened(prices, flagged, artefacts)


def touches_flagged(
    index: pd.DatetimeIndex,
    flagged: pd.DatetimeIndex,
    origins: pd.DatetimeIndex,
    horizon: int,
    lookback: int,
) -> np.ndarray:
    """Per origin: does a flagged day lie among its last ``lookback`` rows (the input
    window, the origin included) or its next ``horizon`` rows (the target)?"""
    origin_at = index.get_indexer(origins)
    flagged_at = np.sort(index.get_indexer(flagged[flagged.isin(index)]))
    before = np.searchsorted(flagged_at, origin_at - lookback, side="right")
    through = np.searchsorted(flagged_at, origin_at + horizon, side="right")
    return through > before


def flagged_dates(artefacts: list[Artefact], index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """The days whose returns are not real: each flagged bar, and for a stale bar or a
    reversal also the next one (its return carries two days' moves or the undoing)."""
    days = {pd.Timestamp(a.date) for a in artefacts if a.kind != "other_security"}
    for artefact in artefacts:
        if artefact.kind in ("stale_bar", "reversal"):
            position = index.searchsorted(pd.Timestamp(artefact.date)) + 1
            if position < len(index):
                days.add(index[position])
    return pd.DatetimeIndex(sorted(days)).intersection(index)
