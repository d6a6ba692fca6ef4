"""Data sources: cache -> Yahoo (always faked here) -> bundled; offline mode; corrupt caches."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.state_space.data import sources as data
from ml.state_space.data.frames import standardise
from ml.state_space.data.sources import DataUnavailableError, load_bundled, load_history
from ml.state_space.data.symbols import InvalidSymbolError
from ml.state_space.data.universe import BUNDLED_SYMBOLS


def _recent(frame: pd.DataFrame, rows: int = 300) -> pd.DataFrame:
    """The last ``rows`` of real prices, re-dated to business days ending today."""
    out = frame.iloc[-rows:].copy()
    end = pd.Timestamp.today().normalize()
    out.index = pd.bdate_range(end=end, periods=rows).as_unit("ns")
    return out.rename_axis("date")


def _as_yahoo(frame: pd.DataFrame) -> pd.DataFrame:
    """Our frame in the shape ``yf.Ticker.history`` returns (title-case, exchange tz)."""
    raw = frame.rename(columns=str.title)
    raw.index = frame.index.tz_localize("America/New_York").rename("Date")
    return raw


class FakeYahoo:
    """Stands in for ``data._yahoo_history``; records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, pd.Timestamp | None]] = []
        self.history: pd.DataFrame | Exception = ConnectionError("network disabled in tests")

    def __call__(self, symbol: str, start: pd.Timestamp | None, timeout: float) -> pd.DataFrame:
        self.calls.append((symbol, start))
        if isinstance(self.history, Exception):
            raise self.history
        return _as_yahoo(self.history.loc[start:])


@pytest.fixture(autouse=True)
def yahoo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> FakeYahoo:
    """No test touches the network or the user's cache; offline mode off unless set."""
    fake = FakeYahoo()
    monkeypatch.setattr(data, "_yahoo_history", fake)
    monkeypatch.delenv(data.OFFLINE_ENV, raising=False)
    monkeypatch.setenv(data.CACHE_DIR_ENV, str(tmp_path / "default-cache"))
    return fake


@pytest.fixture
def spx(ohlcv_prices: pd.DataFrame) -> pd.DataFrame:
    """Real ^GSPC bars re-dated to end today: what Yahoo 'returns'."""
    return _recent(ohlcv_prices)


def test_aapl_offline_is_the_full_real_history(tmp_path: Path, yahoo: FakeYahoo) -> None:
    df = load_history("AAPL", offline=True, cache_dir=tmp_path)
    assert len(df) == 5402
    assert list(df.columns) == ["open", "high", "low", "close", "volume"]
    assert df.index.name == "date" and df.index.tz is None
    assert df.index.is_monotonic_increasing and df.index.is_unique
    assert df.attrs == {
        "symbol": "AAPL",
        "source": "bundled",
        "dataset": "sp500-universe",
        "last_date": "2021-04-21",
    }
    assert yahoo.calls == []


@pytest.mark.parametrize("symbol", BUNDLED_SYMBOLS)
def test_every_bundled_symbol_loads_with_finite_positive_close(symbol: str) -> None:
    df = load_bundled(symbol)
    assert len(df) > 5000
    assert np.isfinite(df["close"]).all() and (df["close"] > 0).all()
    expected = ["close"] if symbol == "RRC" else ["open", "high", "low", "close", "volume"]
    assert list(df.columns) == expected


def test_adj_close_scales_open_high_low() -> None:
    raw = pd.DataFrame(
        {"Open": [10.0], "High": [12.0], "Low": [8.0], "Close": [10.0], "Adj Close": [5.0]},
        index=pd.DatetimeIndex(["2020-01-02"]),
    )
    out = standardise(raw)
    assert out.iloc[0].to_dict() == {"open": 5.0, "high": 6.0, "low": 4.0, "close": 5.0}


def test_start_end_filter_inclusive(tmp_path: Path) -> None:
    df = load_history(
        "MSFT", start="2020-01-02", end="2020-12-31", offline=True, cache_dir=tmp_path
    )
    assert df.index[0] == pd.Timestamp("2020-01-02")
    assert df.attrs["last_date"] == "2020-12-31"
    with pytest.raises(DataUnavailableError, match="covers 1999-11-01 to 2021-04-21"):
        load_history("MSFT", start="2030-01-01", offline=True, cache_dir=tmp_path)


def test_yahoo_result_is_cached_then_served_from_cache(
    tmp_path: Path, yahoo: FakeYahoo, spx: pd.DataFrame
) -> None:
    yahoo.history = spx
    first = load_history("nvda", cache_dir=tmp_path)
    assert first.attrs["source"] == "yahoo" and first.attrs["symbol"] == "NVDA"
    pd.testing.assert_frame_equal(first, spx, check_freq=False)
    assert (tmp_path / "NVDA.parquet").is_file()
    again = load_history("NVDA", cache_dir=tmp_path)
    assert again.attrs["source"] == "cache"
    assert yahoo.calls == [("NVDA", None)]


def test_default_cache_dir_comes_from_env(tmp_path: Path, yahoo: FakeYahoo, spx) -> None:
    yahoo.history = spx
    load_history("NVDA")
    assert (tmp_path / "default-cache" / "NVDA.parquet").is_file()


def test_incremental_refresh_appends_only_new_rows(
    tmp_path: Path, yahoo: FakeYahoo, spx: pd.DataFrame
) -> None:
    stale = spx.iloc[:-10]
    stale.to_parquet(tmp_path / "NVDA.parquet")
    yahoo.history = spx
    df = load_history("NVDA", cache_dir=tmp_path)
    assert yahoo.calls == [("NVDA", stale.index[-1])]
    assert df.attrs["source"] == "yahoo" and len(df) == len(spx)
    cached = pd.read_parquet(tmp_path / "NVDA.parquet")
    pd.testing.assert_frame_equal(cached.iloc[: len(stale)], stale, check_freq=False)
    pd.testing.assert_frame_equal(cached, spx, check_freq=False)


def test_readjusted_history_triggers_full_refetch(
    tmp_path: Path, yahoo: FakeYahoo, spx: pd.DataFrame
) -> None:
    (spx.iloc[:-10] * 2.0).to_parquet(tmp_path / "NVDA.parquet")  # pre-split prices
    yahoo.history = spx
    df = load_history("NVDA", cache_dir=tmp_path)
    assert [start for _, start in yahoo.calls] == [spx.index[-11], None]
    pd.testing.assert_frame_equal(df, spx, check_freq=False)


def test_yahoo_failure_falls_back_to_stale_cache(
    tmp_path: Path, yahoo: FakeYahoo, spx: pd.DataFrame
) -> None:
    stale = spx.iloc[:-10]
    stale.to_parquet(tmp_path / "NVDA.parquet")
    df = load_history("NVDA", cache_dir=tmp_path)
    assert df.attrs["source"] == "cache" and len(df) == len(stale)
    assert len(yahoo.calls) == 1


def test_yahoo_failure_without_cache_falls_back_to_bundled(
    tmp_path: Path, yahoo: FakeYahoo
) -> None:
    df = load_history("AAPL", cache_dir=tmp_path)
    assert df.attrs["source"] == "bundled" and len(df) == 5402
    assert yahoo.calls == [("AAPL", None)]
    assert not (tmp_path / "AAPL.parquet").exists()


def test_unknown_symbol_online_reports_network_error(tmp_path: Path) -> None:
    with pytest.raises(DataUnavailableError, match="network disabled in tests") as info:
        load_history("NOSUCH", cache_dir=tmp_path)
    assert "--prices FILE" in str(info.value) and "SP500 universe" in str(info.value)


def test_hung_yahoo_call_hits_the_deadline(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(data, "YAHOO_DEADLINE_S", 0.05)
    monkeypatch.setattr(data, "_yahoo_history", lambda *_: time.sleep(1.0))
    started = time.perf_counter()
    with pytest.raises(DataUnavailableError, match=r"TimeoutError: no answer within 0\.05 s"):
        load_history("NOSUCH", cache_dir=tmp_path)
    assert time.perf_counter() - started < 0.5


@pytest.mark.parametrize(
    ("history", "reason"),
    [
        (pd.DataFrame({"close": []}, index=pd.DatetimeIndex([])), "no rows returned"),
        (
            pd.DataFrame({"close": [10.0, -1.0]}, index=pd.bdate_range("2024-01-01", periods=2)),
            "non-positive price",
        ),
    ],
    ids=["empty", "negative-close"],
)
def test_invalid_yahoo_data_is_not_cached(
    tmp_path: Path, yahoo: FakeYahoo, history: pd.DataFrame, reason: str
) -> None:
    yahoo.history = history.rename_axis("date")
    with pytest.raises(DataUnavailableError, match=reason):
        load_history("NOSUCH", cache_dir=tmp_path)
    assert not (tmp_path / "NOSUCH.parquet").exists()


def test_multiindex_columns_are_flattened(tmp_path: Path, monkeypatch, spx) -> None:
    raw = _as_yahoo(spx)
    raw.columns = pd.MultiIndex.from_product([raw.columns, ["NVDA"]], names=["Price", "Ticker"])
    monkeypatch.setattr(data, "_yahoo_history", lambda *_: raw)
    df = load_history("NVDA", cache_dir=tmp_path)
    pd.testing.assert_frame_equal(df, spx, check_freq=False)


def _garbage(path: Path, frame: pd.DataFrame) -> None:
    path.write_bytes(b"PAR1 this is not parquet")


def _nan_close(path: Path, frame: pd.DataFrame) -> None:
    frame.assign(close=np.where(np.arange(len(frame)) == 5, np.nan, frame["close"])).to_parquet(
        path
    )


def _wrong_columns(path: Path, frame: pd.DataFrame) -> None:
    frame.rename(columns={"close": "Close"}).to_parquet(path)


def _nat_index(path: Path, frame: pd.DataFrame) -> None:
    frame.set_axis(frame.index.where(np.arange(len(frame)) != 3, pd.NaT)).to_parquet(path)


@pytest.mark.parametrize("corrupt", [_garbage, _nan_close, _wrong_columns, _nat_index])
def test_corrupt_cache_is_deleted_and_refetched(
    tmp_path: Path, yahoo: FakeYahoo, spx: pd.DataFrame, corrupt, caplog
) -> None:
    corrupt(tmp_path / "NVDA.parquet", spx)
    yahoo.history = spx
    df = load_history("NVDA", cache_dir=tmp_path)
    assert "corrupt cache file" in caplog.text
    assert df.attrs["source"] == "yahoo" and yahoo.calls == [("NVDA", None)]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "NVDA.parquet"), spx, check_freq=False)


def test_corrupt_cache_offline_falls_back_to_bundled(tmp_path: Path) -> None:
    _garbage(tmp_path / "AAPL.parquet", pd.DataFrame())
    df = load_history("AAPL", offline=True, cache_dir=tmp_path)
    assert df.attrs["source"] == "bundled"
    assert not (tmp_path / "AAPL.parquet").exists()


@pytest.mark.parametrize("value", ["1", "true", "YES"])
def test_offline_env_skips_the_network(
    tmp_path: Path, yahoo: FakeYahoo, spx: pd.DataFrame, monkeypatch, value: str
) -> None:
    monkeypatch.setenv(data.OFFLINE_ENV, value)
    stale = spx.iloc[:-10]
    stale.to_parquet(tmp_path / "NVDA.parquet")
    assert load_history("NVDA", cache_dir=tmp_path).attrs["source"] == "cache"
    assert load_history("AAPL", cache_dir=tmp_path).attrs["source"] == "bundled"
    assert yahoo.calls == []


def test_unknown_symbol_offline_explains_what_was_tried(tmp_path: Path, yahoo) -> None:
    with pytest.raises(DataUnavailableError) as info:
        load_history("NOSUCH", offline=True, cache_dir=tmp_path)
    message = str(info.value)
    for part in ("'NOSUCH'", "offline", str(tmp_path / "NOSUCH.parquet"), "run online", "^GSPC"):
        assert part in message
    assert isinstance(info.value, LookupError) and yahoo.calls == []


def test_invalid_symbol_never_reaches_the_filesystem(tmp_path: Path, yahoo) -> None:
    with pytest.raises(InvalidSymbolError):
        load_history("../evil", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists() and yahoo.calls == []
