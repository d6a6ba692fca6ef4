import pandas as pd
import pytest

from ml.state_space.data.calendar import (
    CalendarRangeError,
    add_trading_days,
    add_trading_days_many,
    is_session,
    last_session_before,
)


def test_good_friday_is_not_a_trading_day():
    assert not is_session("2013-03-29")
    assert add_trading_days("2013-03-28", 1) == pd.Timestamp("2013-04-01")


def test_unscheduled_closures_are_skipped():
    # Hurricane Sandy closed the NYSE on 29 and 30 October 2012.
    assert add_trading_days("2012-10-26", 1) == pd.Timestamp("2012-10-31")


def test_counts_sessions_over_weekends_and_holidays():
    # Friday 2022-12-23 -> Monday 26 is the Christmas holiday.
    assert add_trading_days("2022-12-23", 1) == pd.Timestamp("2022-12-27")
    assert add_trading_days("2022-12-23", 5) == pd.Timestamp("2023-01-03")  # 2 Jan closed


def test_a_non_session_start_counts_from_the_next_session():
    assert add_trading_days("2013-03-29", 1) == pd.Timestamp("2013-04-01")
    assert add_trading_days("2013-03-30", 2) == pd.Timestamp("2013-04-02")


def test_many_dates_match_one_at_a_time():
    dates = pd.bdate_range("2008-01-01", "2008-03-01")
    many = add_trading_days_many(dates, 10)
    assert list(many) == [add_trading_days(d, 10) for d in dates]


def test_last_session_before_skips_holidays():
    assert last_session_before("2013-04-01") == pd.Timestamp("2013-03-28")


def test_out_of_range_and_bad_days_are_clear_errors():
    # the calendar covers every date a price history may have: 1900 to a year ahead
    assert add_trading_days("1980-01-02", 1) == pd.Timestamp("1980-01-03")
    ahead = pd.Timestamp.today().normalize() + pd.DateOffset(years=1)
    assert add_trading_days(ahead, 30) > ahead
    with pytest.raises(CalendarRangeError, match="XNYS"):
        add_trading_days("1899-06-01", 1)
    with pytest.raises(CalendarRangeError):
        add_trading_days("2200-01-02", 1)
    with pytest.raises(ValueError, match="days"):
        add_trading_days("2013-03-28", 0)
