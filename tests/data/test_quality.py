"""Data-quality gate: one test per check, on real bundled data with injected defects."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ml.state_space.data.quality import DataQualityError, QualityReport, validate_price_data
from ml.state_space.data.sources import load_bundled
from ml.state_space.data.universe import BUNDLED_SYMBOLS

DAY = pd.Timestamp("2015-06-15")


@pytest.mark.parametrize("symbol", BUNDLED_SYMBOLS)
def test_every_bundled_symbol_passes_with_defaults(symbol: str) -> None:
    report = validate_price_data(load_bundled(symbol), symbol, min_rows=1000)
    assert report.rows > 1000
    assert report.start < report.end


def test_report_is_json_friendly(bundled_prices: pd.DataFrame) -> None:
    report = validate_price_data(bundled_prices, "AAPL", min_rows=500)
    assert isinstance(report, QualityReport)
    payload = json.loads(json.dumps(report.to_dict()))
    assert payload["symbol"] == "AAPL"
    assert payload["rows"] == 8313
    assert (payload["start"], payload["end"]) == ("1990-01-02", "2022-12-28")


def test_too_few_rows_says_needed_and_available(bundled_prices: pd.DataFrame) -> None:
    with pytest.raises(DataQualityError, match=r"AAPL: 50 rows .* 200 are needed"):
        validate_price_data(bundled_prices.iloc[:50], "AAPL", min_rows=200)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_inf_price_is_rejected_with_its_date(ohlcv_prices: pd.DataFrame, bad: float) -> None:
    ohlcv_prices.loc[DAY, "high"] = bad
    with pytest.raises(DataQualityError, match=r"\^GSPC: NaN or infinite values on 2015-06-15"):
        validate_price_data(ohlcv_prices, "^GSPC", min_rows=100)


@pytest.mark.parametrize("bad", [0.0, -1.5])
def test_non_positive_price_is_rejected(bundled_prices: pd.DataFrame, bad: float) -> None:
    bundled_prices.loc[DAY, "close"] = bad
    with pytest.raises(DataQualityError, match=r"non-positive price .* 2015-06-15"):
        validate_price_data(bundled_prices, "AAPL", min_rows=100)


def test_negative_volume_is_rejected(ohlcv_prices: pd.DataFrame) -> None:
    ohlcv_prices.loc[DAY, "volume"] = -10.0
    with pytest.raises(DataQualityError, match="negative volume on 2015-06-15"):
        validate_price_data(ohlcv_prices, "^GSPC", min_rows=100)


def test_flat_series_is_rejected(bundled_prices: pd.DataFrame) -> None:
    bundled_prices["close"] = 42.0
    with pytest.raises(DataQualityError, match="close is constant"):
        validate_price_data(bundled_prices, "AAPL", min_rows=100)


def test_duplicate_dates_are_rejected(bundled_prices: pd.DataFrame) -> None:
    doubled = pd.concat([bundled_prices, bundled_prices.loc[[DAY]]]).sort_index()
    with pytest.raises(DataQualityError, match="duplicate dates 2015-06-15"):
        validate_price_data(doubled, "AAPL", min_rows=100)


def test_unsorted_dates_are_rejected(bundled_prices: pd.DataFrame) -> None:
    shuffled = bundled_prices.iloc[[*range(100), 101, 100, *range(102, 300)]]
    with pytest.raises(DataQualityError, match="not sorted"):
        validate_price_data(shuffled, "AAPL", min_rows=100)


def test_large_gap_is_rejected_but_real_closures_pass(bundled_prices: pd.DataFrame) -> None:
    validate_price_data(bundled_prices, "AAPL", min_rows=100)  # 9/11/2001: 7-day gap passes
    with pytest.raises(DataQualityError, match=r"2001-09-10 -> 2001-09-17 \(7 days\)"):
        validate_price_data(bundled_prices, "AAPL", min_rows=100, max_gap_days=6)
    holed = bundled_prices.drop(bundled_prices.loc["2015-06-01":"2015-06-30"].index)
    with pytest.raises(DataQualityError, match=r"2015-05-29 -> 2015-07-01 \(33 days\)"):
        validate_price_data(holed, "AAPL", min_rows=100)


def test_real_crash_day_is_a_warning_by_default(bundled_prices: pd.DataFrame) -> None:
    report = validate_price_data(bundled_prices, "AAPL", min_rows=100)
    assert len(report.warnings) == 1
    assert "2000-09-29" in report.warnings[0]
    assert "-0.731" in report.warnings[0]
    with pytest.raises(DataQualityError, match="implausible one-day move on 2000-09-29"):
        validate_price_data(bundled_prices, "AAPL", min_rows=100, jump_policy="error")


def test_injected_jump_is_reported(ohlcv_prices: pd.DataFrame) -> None:
    ohlcv_prices.loc[DAY:, "close"] *= 3.0  # log(3) = 1.099
    report = validate_price_data(ohlcv_prices, "^GSPC", min_rows=100)
    assert [w for w in report.warnings if "2015-06-15" in w and "+1.09" in w]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda df: df.rename(columns={"close": "price"}),
        lambda df: df.reset_index(drop=True),
        lambda df: df.tz_localize("UTC"),
    ],
    ids=["no-close-column", "integer-index", "tz-aware-index"],
)
def test_wrong_shape_is_rejected(bundled_prices: pd.DataFrame, mutate) -> None:
    with pytest.raises(DataQualityError, match="tz-naive DatetimeIndex and a 'close' column"):
        validate_price_data(mutate(bundled_prices), "AAPL", min_rows=100)


def test_bad_arguments_are_rejected(bundled_prices: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="jump_policy"):
        validate_price_data(bundled_prices, "AAPL", min_rows=100, jump_policy="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_rows"):
        validate_price_data(bundled_prices, "AAPL", min_rows=0)
