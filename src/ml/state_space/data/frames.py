"""The canonical price frame every source returns, and the error for "no source has it"."""

from __future__ import annotations

import pandas as pd

__all__ = ["COLUMNS", "DataUnavailableError", "standardise", "tidy"]

#: Columns of a price frame, in order; ``close`` is always there, the others when known.
COLUMNS = ("open", "high", "low", "close", "volume")


class DataUnavailableError(LookupError):
    """No source could provide price history for a symbol."""


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Float columns in canonical order, tz-naive ns index named ``date``."""
    frame = frame[[c for c in COLUMNS if c in frame.columns]].astype("float64")
    frame.index = pd.DatetimeIndex(frame.index).as_unit("ns").rename("date")
    return frame


def standardise(raw: pd.DataFrame) -> pd.DataFrame:
    """Yahoo-style OHLCV (any case, MultiIndex columns, Adj Close, tz-aware index) -> our frame.

    With an adjusted close, open/high/low are scaled by the same factor as the close
    (``adj_close / close``); without a raw close they are dropped, as they cannot be.
    """
    frame = raw.copy()
    if isinstance(frame.columns, pd.MultiIndex):  # yf.download: (Price, Ticker) levels
        levels = [i for i in range(frame.columns.nlevels) if "Close" in frame.columns.levels[i]]
        frame.columns = frame.columns.get_level_values(levels[0] if levels else 0)
    frame.columns = [str(c).strip().lower().replace(" ", "_") for c in frame.columns]
    if "adj_close" in frame.columns:
        intraday = [c for c in ("open", "high", "low") if c in frame.columns]
        if "close" in frame.columns:
            ratio = frame["adj_close"] / frame["close"]
            frame[intraday] = frame[intraday].mul(ratio, axis=0)
        else:  # no raw close, so no factor to adjust them by
            frame = frame.drop(columns=intraday)
        frame["close"] = frame["adj_close"]
    index = pd.DatetimeIndex(frame.index)
    frame.index = (index.tz_localize(None) if index.tz is not None else index).normalize()
    frame = frame[~frame.index.duplicated(keep="last")].sort_index()
    return tidy(frame)
