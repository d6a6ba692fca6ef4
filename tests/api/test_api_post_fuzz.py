"""Generated POST /predict bodies through the ASGI app: each is forecast from the rows it
sends, or refused with a 4xx and a message; never a 5xx.

The bodies are real price histories (the bundled AAPL) bent by one or more defects: a
price level from 1e-300 to 1e300, flat or jumping prices, gaps, a history shifted to any
year the schema admits, high below low, rows cut short, columns dropped on some rows,
dates out of order. ``POST_FUZZ_EXAMPLES`` sets the count (docs/API.md holds a run of
2,000).
"""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ml.state_space.data.sources import load_bundled

EXAMPLES = int(os.environ.get("POST_FUZZ_EXAMPLES", "40"))
OHLCV = ("open", "high", "low", "close", "volume")
BASE = load_bundled("AAPL").iloc[-700:]


@st.composite
def bodies(draw) -> list[dict]:
    enough = st.integers(600, 700)  # the tiny models need ~600 rows
    rows = draw(st.one_of(enough, enough, enough, st.integers(2, 600)))
    frame = BASE.iloc[-rows:].copy()
    level = 10.0 ** draw(st.sampled_from([0, 0, 0, -300, -12, -6, 6, 12, 300]))
    prices = ["open", "high", "low", "close"]
    frame[prices] = frame[prices] / frame["close"].iloc[-1] * level
    if draw(st.integers(0, 5)) == 0:
        frame[prices] = frame["close"].iloc[0]  # a constant price
    if draw(st.integers(0, 5)) == 0:
        at = draw(st.integers(0, rows - 1))
        frame.iloc[at:, frame.columns.get_loc("close")] *= draw(st.sampled_from([3.0, 1e-3]))
    if draw(st.integers(0, 5)) == 0:
        frame["high"], frame["low"] = frame["low"], frame["high"]  # high below low
    last = draw(st.sampled_from(["2021-04-21", "1905-06-30", "1989-12-29", "2027-11-30"]))
    frame.index = pd.bdate_range(end=last, periods=rows)
    if rows > 60 and draw(st.integers(0, 5)) == 0:
        frame = frame.drop(frame.index[10:50])  # a gap of 40 business days
    columns = draw(st.sampled_from([*[OHLCV] * 4, ("close",), ("close", "volume")]))
    body = [
        {"date": str(day.date()), **{c: float(frame.at[day, c]) for c in columns}}
        for day in frame.index
    ]
    if len(body) > 3 and draw(st.integers(0, 7)) == 0:
        body[1], body[2] = body[2], body[1]  # out of order
    if len(body) > 3 and "volume" in columns and draw(st.integers(0, 7)) == 0:
        del body[-2]["volume"]  # a column on some rows only
    return body


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies())
def test_a_generated_history_is_forecast_or_refused_never_a_server_error(
    client: TestClient, body: list[dict]
) -> None:
    response = client.post("/predict/AAPL", json={"prices": body})
    assert response.status_code < 500, response.text
    answer = response.json()
    if response.status_code != 200:
        event(f"refused: {response.status_code} {answer['error']}")
        assert answer["error"] and answer["message"]
        return
    event("forecast")
    assert answer["as_of"] == max(row["date"] for row in body)
    last = max(body, key=lambda row: row["date"])
    assert math.isclose(answer["last_close"], last["close"], rel_tol=1e-12)
    for horizon in answer["horizons"]:
        quantiles = [horizon["price"][q] for q in ("0.1", "0.5", "0.9")]
        assert all(q is not None and np.isfinite(q) and q > 0 for q in quantiles), answer
        assert quantiles == sorted(quantiles)


@pytest.fixture(autouse=True)
def _quiet_numpy():
    with np.errstate(all="ignore"):
        yield
