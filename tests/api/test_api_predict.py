"""GET/POST /predict and the batch endpoint on real tiny models."""

from __future__ import annotations

import math
from typing import Any

import pytest
from fastapi.testclient import TestClient

from ml.state_space.data.sources import load_bundled

OHLCV = ("open", "high", "low", "close", "volume")


def price_rows(symbol: str, rows: int, columns: tuple[str, ...] = OHLCV) -> list[dict]:
    frame = load_bundled(symbol).iloc[-rows:]
    return [
        {"date": str(day.date()), **{c: float(frame.at[day, c]) for c in columns}}
        for day in frame.index
    ]


def assert_forecast(body: dict[str, Any], symbol: str) -> None:
    assert body["symbol"] == symbol
    assert [h["horizon"] for h in body["horizons"]] == [1, 5, 10, 30]
    dates = [body["as_of"], *(h["target_date"] for h in body["horizons"])]
    assert dates == sorted(set(dates)), "target dates must be strictly after as_of"
    for h in body["horizons"]:
        assert set(h["log_return"]) == set(h["price"]) == {"0.1", "0.5", "0.9"}
        lo, mid, hi = (h["price"][q] for q in ("0.1", "0.5", "0.9"))
        assert 0 < lo <= mid <= hi, "quantiles must not cross"
        assert h["point_forecast"] == mid
        assert h["interval"] == {"level": 0.8, "lower": lo, "upper": hi}
        assert math.isclose(mid, body["last_close"] * math.exp(h["log_return"]["0.5"]))
        skill = h["test_skill_vs_random_walk"]
        assert skill is None or math.isfinite(skill)


@pytest.mark.parametrize(
    ("path", "symbol"), [("AAPL", "AAPL"), ("aapl", "AAPL"), ("%5EGSPC", "^GSPC")]
)
def test_get_predict_forecasts_every_horizon(client: TestClient, path: str, symbol: str) -> None:
    response = client.get(f"/predict/{path}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert_forecast(body, symbol)
    assert body["source"] == "bundled"
    bundled = load_bundled(symbol)
    assert body["as_of"] == str(bundled.index[-1].date())
    assert body["last_close"] == pytest.approx(bundled["close"].iloc[-1])
    model = client.get(f"/models/{path}").json()
    assert body["model_version"] == model["version"]
    assert body["horizons"][0]["test_skill_vs_random_walk"] == pytest.approx(
        model["metrics"]["test"]["h1"]["skill_vs_random_walk"]
    )


def test_post_predict_on_the_same_prices_gives_the_same_forecast(client: TestClient) -> None:
    stored = client.get("/predict/AAPL").json()
    response = client.post("/predict/AAPL", json={"prices": price_rows("AAPL", 600)})
    assert response.status_code == 200, response.text
    posted = response.json()
    assert_forecast(posted, "AAPL")
    assert posted["source"] == "client"
    assert posted["as_of"] == stored["as_of"]
    for mine, theirs in zip(posted["horizons"], stored["horizons"], strict=True):
        assert mine["log_return"] == pytest.approx(theirs["log_return"], abs=1e-5)


def test_post_predict_with_ohlcv(client: TestClient) -> None:
    response = client.post("/predict/^GSPC", json={"prices": price_rows("^GSPC", 600)})
    assert response.status_code == 200, response.text
    assert_forecast(response.json(), "^GSPC")


def test_post_predict_without_the_columns_the_model_needs_is_422(client: TestClient) -> None:
    rows = price_rows("^GSPC", 600, ("close",))
    response = client.post("/predict/^GSPC", json={"prices": rows})
    assert response.status_code == 422
    assert response.json()["error"] == "insufficient_history"
    assert "open" in response.json()["message"]


def test_post_predict_with_too_few_rows_says_how_many_are_needed(client: TestClient) -> None:
    response = client.post("/predict/AAPL", json={"prices": price_rows("AAPL", 100)})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "insufficient_history"
    assert "100 rows" in body["message"] and "at least" in body["message"]


def test_batch_returns_a_result_or_an_error_per_symbol(client: TestClient) -> None:
    response = client.post("/predict", json={"symbols": ["aapl", "^GSPC", "AAPL", "MSFT", "../x"]})
    assert response.status_code == 200, response.text
    results = {item["symbol"]: item for item in response.json()["results"]}
    assert list(results) == ["AAPL", "^GSPC", "MSFT", "../X"], "order kept, duplicates merged"
    assert_forecast(results["AAPL"]["forecast"], "AAPL")
    assert results["^GSPC"]["status"] == 200
    assert results["MSFT"]["status"] == 404
    assert results["MSFT"]["error"]["error"] == "model_not_found"
    assert results["../X"]["status"] == 422
    assert results["../X"]["error"]["error"] == "invalid_symbol"


def test_batch_size_is_bounded(make_app) -> None:
    with TestClient(make_app(max_batch=2)) as client:
        response = client.post("/predict", json={"symbols": ["AAPL", "MSFT", "JPM"]})
        assert response.status_code == 422
        assert "limit is 2" in response.json()["message"]
        too_many = client.post("/predict", json={"symbols": [f"S{i}" for i in range(101)]})
        assert too_many.status_code == 422
        assert client.post("/predict", json={"symbols": []}).status_code == 422


def test_a_forecast_from_a_window_with_an_artefact_says_so(client: TestClient) -> None:
    frame = load_bundled("AAPL").loc[:"2003-03-31"].iloc[-600:]  # the stale bar of 2003-01-29
    rows = [
        {"date": str(day.date()), **{c: float(frame.at[day, c]) for c in OHLCV}}
        for day in frame.index
    ]
    body = client.post("/predict/AAPL", json={"prices": rows}).json()
    assert "2003-01-29 stale_bar" in body["data_warning"]
    assert client.get("/predict/AAPL").json()["data_warning"] is None
