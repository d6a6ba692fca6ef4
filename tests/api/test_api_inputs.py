"""POST histories at the edges of what the schema admits: each is served or refused with a
4xx naming the problem, never a 500."""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tests.api.test_api_predict import assert_forecast, price_rows


def shifted(rows: list[dict], last: str) -> list[dict]:
    """``rows`` moved onto the business days that end on ``last``."""
    days = pd.bdate_range(end=last, periods=len(rows))
    return [{**row, "date": str(day.date())} for row, day in zip(rows, days, strict=True)]


@pytest.mark.parametrize("last", ["1989-12-29", "1975-06-30", "2027-12-02"])
def test_a_history_far_back_or_a_year_ahead_is_forecast(client: TestClient, last: str) -> None:
    rows = shifted(price_rows("AAPL", 600), last)
    response = client.post("/predict/AAPL", json={"prices": rows})
    assert response.status_code == 200, response.text
    assert_forecast(response.json(), "AAPL")


def test_a_tiny_price_level_is_forecast_in_numbers_not_nulls(client: TestClient) -> None:
    rows = price_rows("AAPL", 600)
    scale = 1e-300 / rows[-1]["close"]
    prices = ("open", "high", "low", "close")
    tiny = [{**row, **{c: row[c] * scale for c in prices}} for row in rows]
    response = client.post("/predict/AAPL", json={"prices": tiny})
    assert response.status_code == 200, response.text
    assert_forecast(response.json(), "AAPL")  # every quantile a positive price
