"""Price-data quality gate: structural checks plus plausibility checks before training."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

__all__ = ["DataQualityError", "QualityReport", "check_price_frame", "validate_price_data"]

logger = logging.getLogger(__name__)

PRICE_COLUMNS = ("open", "high", "low", "close")
_SHOW = 5  # offending dates/values quoted per message


class DataQualityError(ValueError):
    """Price data unfit for training or serving; the message names symbol and offending rows."""


@dataclass(frozen=True)
class QualityReport:
    """Outcome of :func:`validate_price_data` (dates as ``YYYY-MM-DD``)."""

    symbol: str
    rows: int
    start: str
    end: str
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict."""
        return asdict(self)


def _day(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%d")


def _first(index: pd.Index) -> str:
    shown = ", ".join(_day(ts) for ts in index[:_SHOW])
    return shown + (f" ... ({len(index)} in total)" if len(index) > _SHOW else "")


def check_price_frame(df: pd.DataFrame, symbol: str) -> None:
    """Structural checks any loaded frame must pass (also used to reject bad cache/Yahoo data).

    Raises :class:`DataQualityError` for: no ``close`` column or non-date index, NaN/inf
    values, non-positive prices or negative volume, duplicate or unsorted dates.
    """
    if (
        "close" not in df.columns
        or not isinstance(df.index, pd.DatetimeIndex)
        or df.index.tz is not None
    ):
        raise DataQualityError(
            f"{symbol}: expected a tz-naive DatetimeIndex and a 'close' column, got index "
            f"{type(df.index).__name__} (tz={getattr(df.index, 'tz', None)}) "
            f"and columns {list(df.columns)}"
        )
    if df.index.hasnans:
        raise DataQualityError(f"{symbol}: {int(df.index.isna().sum())} missing (NaT) dates")
    numeric = df[[c for c in (*PRICE_COLUMNS, "volume") if c in df.columns]]
    bad = ~np.isfinite(numeric.to_numpy(dtype=float)).all(axis=1)
    if bad.any():
        raise DataQualityError(
            f"{symbol}: NaN or infinite values on {_first(df.index[bad])}; "
            "drop or fill those rows before use"
        )
    prices = numeric[[c for c in PRICE_COLUMNS if c in numeric.columns]]
    bad = (prices <= 0).any(axis=1).to_numpy()
    if "volume" in numeric.columns:
        bad = bad | (numeric["volume"] < 0).to_numpy()
    if bad.any():
        first = df.index[bad][0]
        raise DataQualityError(
            f"{symbol}: non-positive price or negative volume on {_first(df.index[bad])} "
            f"(first: {numeric.loc[first].to_dict()})"
        )
    if df.index.has_duplicates:
        raise DataQualityError(
            f"{symbol}: duplicate dates {_first(df.index[df.index.duplicated()].unique())}"
        )
    if not df.index.is_monotonic_increasing:
        steps = df.index[1:][df.index[1:] < df.index[:-1]]
        raise DataQualityError(f"{symbol}: dates not sorted ascending, e.g. at {_first(steps)}")


def _check_rows(df: pd.DataFrame, symbol: str, min_rows: int) -> None:
    if len(df) < min_rows:
        raise DataQualityError(
            f"{symbol}: {len(df)} rows of price history, but {min_rows} are needed "
            "(feature warm-up + sequence window + horizons + splits); "
            "load a longer history or shorten the window/horizons"
        )


def _check_variance(close: pd.Series, symbol: str) -> None:
    if close.nunique() <= 1:
        raise DataQualityError(
            f"{symbol}: close is constant ({close.iloc[0]!r}) over {len(close)} rows; "
            "a flat series has nothing to learn (stale or placeholder data?)"
        )


def _check_gaps(index: pd.DatetimeIndex, symbol: str, max_gap_days: int) -> None:
    days = np.diff(index.to_numpy()) / np.timedelta64(1, "D")
    where = np.flatnonzero(days > max_gap_days)
    if where.size:
        shown = ", ".join(
            f"{_day(index[i])} -> {_day(index[i + 1])} ({days[i]:.0f} days)" for i in where[:_SHOW]
        )
        raise DataQualityError(
            f"{symbol}: {where.size} calendar gap(s) longer than {max_gap_days} days: {shown}; "
            "missing history - reload the data or start after the gap"
        )


def _jump_messages(close: pd.Series, symbol: str, max_abs_log_return: float) -> list[str]:
    log_ret = np.log(close).diff()
    jumps = log_ret[log_ret.abs() > max_abs_log_return]
    return [
        f"{symbol}: implausible one-day move on {_day(ts)}: log return {value:+.3f} "
        f"(close {close.shift(1).loc[ts]:.4g} -> {close.loc[ts]:.4g}, "
        f"limit {max_abs_log_return})"
        for ts, value in jumps.items()
    ]


def validate_price_data(
    df: pd.DataFrame,
    symbol: str,
    min_rows: int,
    max_gap_days: int = 10,
    max_abs_log_return: float = 0.7,
    jump_policy: Literal["warn", "error"] = "warn",
) -> QualityReport:
    """Check ``df`` (a ``load_history`` frame) and return a :class:`QualityReport`.

    ``max_gap_days`` is in calendar days (real exchange closures reach 7, e.g. after
    9/11/2001). One-day moves beyond ``max_abs_log_return`` become report warnings
    (``jump_policy="warn"``) or a :class:`DataQualityError` (``"error"``).
    """
    if min_rows < 2:
        raise ValueError(f"min_rows must be at least 2, got {min_rows}")
    if jump_policy not in ("warn", "error"):
        raise ValueError(f"jump_policy must be 'warn' or 'error', got {jump_policy!r}")
    check_price_frame(df, symbol)
    _check_rows(df, symbol, min_rows)
    _check_variance(df["close"], symbol)
    _check_gaps(df.index, symbol, max_gap_days)
    jumps = _jump_messages(df["close"], symbol, max_abs_log_return)
    if jumps and jump_policy == "error":
        raise DataQualityError(
            "; ".join(jumps[:_SHOW]) + "; fix the data or pass jump_policy='warn'"
        )
    for message in jumps:
        logger.warning(message)
    return QualityReport(
        symbol=symbol,
        rows=len(df),
        start=_day(df.index[0]),
        end=_day(df.index[-1]),
        warnings=jumps,
    )
