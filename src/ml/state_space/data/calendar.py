"""NYSE trading sessions (``exchange_calendars``' XNYS), for target dates and freshness.

Holidays and unscheduled closures (e.g. Hurricane Sandy, 29-30 October 2012)
are not trading days, so "h trading days after t" means the h-th NYSE session
after t.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import exchange_calendars
import numpy as np
import pandas as pd

EXCHANGE = "XNYS"
# the range of dates a price history may have (the service admits 1900 to a year ahead),
# and the targets 30 sessions beyond it
FIRST_SESSION = "1900-01-02"
YEARS_AHEAD = 2


class CalendarRangeError(ValueError):
    """A date lies outside the sessions the exchange calendar knows."""


@cache
def sessions() -> pd.DatetimeIndex:
    """Every NYSE session from 1900 to two years after today (the calendar's rules: its
    holidays and known closures)."""
    end = pd.Timestamp.today().normalize() + pd.DateOffset(years=YEARS_AHEAD)
    return exchange_calendars.get_calendar(EXCHANGE, start=FIRST_SESSION, end=end).sessions


def add_trading_days(as_of: pd.Timestamp | str, days: int) -> pd.Timestamp:
    """The ``days``-th NYSE session after ``as_of`` (``as_of`` need not be a session)."""
    return add_trading_days_many([as_of], days)[0]


def add_trading_days_many(dates: Sequence[pd.Timestamp | str], days: int) -> pd.DatetimeIndex:
    """``add_trading_days`` for many dates at once."""
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    calendar = sessions()
    stamps = pd.DatetimeIndex(pd.to_datetime(list(dates))).normalize()
    if stamps.tz is not None:
        stamps = stamps.tz_localize(None)
    positions = calendar.searchsorted(stamps, side="right") + days - 1
    if stamps.size and (stamps.min() < calendar[0] or positions.max() >= calendar.size):
        raise CalendarRangeError(
            f"{EXCHANGE} sessions are known from {calendar[0].date()} to "
            f"{calendar[-1].date()}; cannot add {days} trading days to {stamps.min().date()}.."
            f"{stamps.max().date()}"
        )
    return pd.DatetimeIndex(calendar[np.asarray(positions)])


def is_session(date: pd.Timestamp | str) -> bool:
    """True if the NYSE traded on ``date``."""
    stamp = pd.Timestamp(date).normalize()
    calendar = sessions()
    position = calendar.searchsorted(stamp)
    return bool(position < calendar.size and calendar[position] == stamp)


def last_session_before(date: pd.Timestamp | str) -> pd.Timestamp:
    """The last NYSE session strictly before ``date``."""
    calendar = sessions()
    position = calendar.searchsorted(pd.Timestamp(date).normalize()) - 1
    if position < 0:
        raise CalendarRangeError(f"no {EXCHANGE} session known before {date}")
    return calendar[position]
