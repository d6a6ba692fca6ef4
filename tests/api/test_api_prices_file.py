"""MAMBA_API_PRICES_FILE: a user's prices are what the service forecasts from."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.server import main
from ml.state_space.data.sources import load_bundled


def test_symbols_in_the_file_are_forecast_from_it(make_app, tmp_path: Path) -> None:
    mine = load_bundled("AAPL").loc[:"2020-06-30"].rename_axis("date").reset_index()
    path = tmp_path / "mine.csv"
    mine.assign(symbol="AAPL").to_csv(path, index=False)
    with TestClient(make_app(prices_file=path)) as client:
        body = client.get("/predict/AAPL").json()
        assert body["source"] == "file" and body["as_of"] == "2020-06-30"
        assert body["last_close"] == pytest.approx(mine["close"].iloc[-1])
        other = client.get("/predict/%5EGSPC").json()  # not in the file: bundled as before
        assert other["source"] == "bundled"


def test_a_bad_prices_file_stops_start_up_with_one_line(monkeypatch, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("date,symbol,close\n2020-01-02,AAPL,-1\n")
    monkeypatch.setenv("MAMBA_API_PRICES_FILE", str(path))
    with pytest.raises(SystemExit, match=r"MAMBA_API_PRICES_FILE: .*bad.csv, line 2") as stop:
        main(["--port", "9"])
    assert "\n" not in str(stop.value)
