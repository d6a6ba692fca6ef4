"""Users' own price files: both layouts, three formats, one clear error per kind of bad file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.state_space.data.bundled import load_bundled
from ml.state_space.data.prices_file import PricesFileError, read_prices_file
from ml.state_space.data.sources import load_history
from ml.state_space.data.universe import resolve_symbols

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def real() -> dict[str, pd.DataFrame]:
    """The last 300 real bars of two universe stocks."""
    return {s: load_bundled(s).iloc[-300:] for s in ("KO", "XOM")}


def long_table(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    parts = [f.rename_axis("date").reset_index().assign(symbol=s) for s, f in frames.items()]
    return pd.concat(parts, ignore_index=True)


def write_long(path: Path, frames: dict[str, pd.DataFrame]) -> Path:
    table = long_table(frames)
    if path.name.endswith(".parquet"):
        table.to_parquet(path)
    else:
        table.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("name", ["prices.csv", "prices.csv.gz", "prices.parquet"])
def test_a_long_file_round_trips_every_column(tmp_path: Path, real, name: str) -> None:
    frames = read_prices_file(write_long(tmp_path / name, real))
    assert list(frames) == ["KO", "XOM"]
    for symbol, frame in frames.items():
        pd.testing.assert_frame_equal(frame, real[symbol], check_freq=False, rtol=1e-12)
        assert frame.attrs == {"symbol": symbol, "source": "file", "dataset": name}


def test_a_wide_file_gives_closes_and_skips_empty_cells(tmp_path: Path, real) -> None:
    wide = pd.DataFrame({s: f["close"] for s, f in real.items()})
    wide.iloc[:10, 1] = np.nan  # XOM "listed" ten days later
    path = tmp_path / "wide.csv"
    wide.rename_axis("Date").to_csv(path)
    frames = read_prices_file(path)
    assert list(frames["KO"].columns) == ["close"]
    assert len(frames["KO"]) == 300 and len(frames["XOM"]) == 290
    np.testing.assert_allclose(frames["XOM"]["close"], real["XOM"]["close"].iloc[10:])


def test_adj_close_adjusts_open_high_low_like_yahoo(tmp_path: Path) -> None:
    path = tmp_path / "adj.csv"
    path.write_text(
        "Date,Symbol,Open,High,Low,Close,Adj Close,Volume\n"
        "2020-01-02,AAA,10,12,8,10,5,100\n"
        "2020-01-03,AAA,10,11,9,11,5.5,100\n"
    )
    frame = read_prices_file(path)["AAA"]
    assert frame["close"].tolist() == [5.0, 5.5]
    assert frame["high"].tolist() == [6.0, 5.5] and frame["low"].tolist() == [4.0, 4.5]


BAD_FILES = {
    "no date column": ("when,AAA\n2020-01-02,1\n2020-01-03,2\n", r"no 'date' column.*name the"),
    "long without close": (
        "date,symbol,open\n2020-01-02,AAA,1\n",
        r"needs a 'close' or 'adj_close' column",
    ),
    "bad date": ("date,AAA\n2020-01-02,1\n2020-13-02,2\n", r"line 3: date '2020-13-02' is not"),
    "non-positive price": (
        "date,symbol,close\n2020-01-02,AAA,1\n2020-01-03,AAA,0\n",
        r"line 3: AAA on 2020-01-03: close '0' is not a finite positive number; correct",
    ),
    "text price": (
        "date,AAA\n2020-01-02,1\n2020-01-03,n/a\n",
        r"line 3: AAA on 2020-01-03: close 'n/a' is not a finite positive",
    ),
    "infinite price": (
        "date,AAA\n2020-01-02,1\n2020-01-03,inf\n",
        r"line 3: AAA on 2020-01-03: close 'inf'",
    ),
    "negative volume": (
        "date,symbol,close,volume\n2020-01-02,AAA,1,-5\n2020-01-03,AAA,1,5\n",
        r"line 2: AAA on 2020-01-02: volume '-5' is not a finite number >= 0",
    ),
    "duplicate date": (
        "date,symbol,close\n2020-01-02,AAA,1\n2020-01-03,AAA,2\n2020-01-03,AAA,3\n",
        r"line 4: AAA has 2020-01-03 more than once; keep one row",
    ),
    "unsorted dates": (
        "date,symbol,close\n2020-01-03,AAA,1\n2020-01-02,AAA,2\n",
        r"line 3: AAA's dates are not in ascending order.*sort the file",
    ),
    "bad symbol": ("date,symbol,close\n2020-01-02,../x,1\n", r"line 2: invalid symbol '../x'"),
    "repeated column": ("date,AAA,AAA\n2020-01-02,1,2\n", r"AAA appear more than once"),
    "too little history": (
        "date,symbol,close\n2020-01-02,AAA,1\n2020-01-02,BBB,1\n2020-01-03,BBB,2\n",
        r"AAA has 1 rows of prices but at least 2 are needed",
    ),
    "empty": ("date,symbol,close\n", r"no prices in the file"),
    "columns differing in case": (
        "date,symbol,Close,close\n2020-01-02,AAA,1,1\n",
        r"columns 'Close', 'close' differ only in case or spaces.*keep one of them",
    ),
    "wide symbols differing in case": (
        "date,AAPL,aapl\n2020-01-02,1,1\n",
        r"columns 'AAPL', 'aapl' differ only in case",
    ),
    "a day with and without a time": (
        "date,symbol,close\n2016-07-14,AAA,1\n2016-07-14 16:00,AAA,2\n2016-07-15,AAA,3\n",
        r"line 3: AAA has 2016-07-14 more than once.*a time of day does not make another day",
    ),
    "blank lines before the bad value": (
        "date,AAA\n2020-01-02,1\n\n\n2020-01-03,x\n",
        r"line 5: AAA on 2020-01-03: close 'x'",
    ),
    "day-first dates": (
        "date,AAA\n12/01/2020,1\n13/01/2020,2\n",
        r"not in ascending order.*dates with '/' are read month first.*YYYY-MM-DD",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_each_bad_file_names_the_file_the_row_and_the_fix(tmp_path: Path, case: str) -> None:
    text, message = BAD_FILES[case]
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(PricesFileError, match=message) as info:
        read_prices_file(path)
    assert str(path) in str(info.value)


def test_missing_unreadable_and_unsupported_files(tmp_path: Path) -> None:
    with pytest.raises(PricesFileError, match="no such file; check the path"):
        read_prices_file(tmp_path / "absent.csv")
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(PricesFileError, match="is a directory; give the prices file inside it"):
        read_prices_file(tmp_path / "folder.csv")
    with pytest.raises(PricesFileError, match="unsupported file type"):
        read_prices_file(tmp_path / "prices.xlsx")
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"not parquet")
    with pytest.raises(PricesFileError, match=r"cannot be read as \.parquet"):
        read_prices_file(broken)


def test_min_rows_names_the_short_symbol(tmp_path: Path, real) -> None:
    path = write_long(tmp_path / "p.csv", real)
    with pytest.raises(PricesFileError, match="KO has 300 rows of prices but at least 301"):
        read_prices_file(path, min_rows=301)


def test_file_frames_take_precedence_over_every_other_source(tmp_path: Path, real) -> None:
    frames = read_prices_file(write_long(tmp_path / "mine.csv", real))
    got = load_history("KO", prices=frames, offline=True, cache_dir=tmp_path)
    assert got.attrs["source"] == "file" and got.attrs["dataset"] == "mine.csv"
    assert load_history("AAPL", prices=frames, offline=True, cache_dir=tmp_path).attrs[
        "source"
    ] == "bundled"


def test_symbols_can_be_a_prices_file_or_a_text_file(tmp_path: Path, real) -> None:
    assert resolve_symbols(str(write_long(tmp_path / "p.csv", real))) == ["KO", "XOM"]
    listed = tmp_path / "symbols.txt"
    listed.write_text("# my names\nmsft, aapl\nKO  # the drinks one\n\nmsft\n")
    assert resolve_symbols(str(listed)) == ["MSFT", "AAPL", "KO"]
    assert len(resolve_symbols("sp500")) == 404


def run_script(script: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


@pytest.mark.parametrize(
    "command",
    ["train_mamba_models.py", "train_mamba_models.py --test", "backtest.py", "data_quality.py"],
)
def test_a_bad_prices_file_exits_2_before_anything_is_written(tmp_path: Path, command) -> None:
    script, *extra = command.split()  # --test reads the --prices file too
    bad = tmp_path / "bad.csv"
    bad.write_text("date,symbol,close\n2020-01-02,AAA,1\n2020-01-02,AAA,2\n")
    out = tmp_path / "out"
    flags = {"train_mamba_models.py": "--models-dir"}.get(script, "--out")
    done = run_script(script, *extra, "--prices", str(bad), flags, str(out), cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "bad.csv, line 3: AAA has 2020-01-02 more than once" in done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists()  # not even an empty directory


def test_data_quality_audits_a_users_file(tmp_path: Path, real) -> None:
    frames = {s: f.copy() for s, f in real.items()}
    frames["KO"] = frames["KO"].drop(frames["KO"].index[150])  # a missing session
    path = write_long(tmp_path / "mine.parquet", frames)
    done = run_script("data_quality.py", "--prices", str(path), "--out", "q", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| missing_sessions | 1 | 1 |" in (tmp_path / "q" / "quality.md").read_text()


def test_timezone_aware_dates_become_new_york_trading_days(tmp_path: Path) -> None:
    instants = pd.to_datetime(["2020-01-02 21:00", "2020-01-03 21:00", "2020-01-06 21:00"])
    table = pd.DataFrame(
        {"date": instants.tz_localize("UTC"), "symbol": "AAA", "close": [1.0, 2.0, 3.0]}
    )
    table.to_parquet(tmp_path / "aware.parquet")  # 16:00 in New York: the same day there
    text = "date,AAA\n2020-01-02T16:00:00-05:00,1\n2020-01-04T00:30:00Z,2\n2020-01-06,3\n"
    (tmp_path / "offsets.csv").write_text(text)
    expected = pd.DatetimeIndex(["2020-01-02", "2020-01-03", "2020-01-06"])
    assert read_prices_file(tmp_path / "aware.parquet")["AAA"].index.equals(expected)
    # 00:30 UTC on Jan 4 is the evening of Jan 3 in New York
    assert read_prices_file(tmp_path / "offsets.csv")["AAA"].index.equals(expected)


def test_a_parquet_value_is_named_as_a_number(tmp_path: Path) -> None:
    dates = ["2020-01-02", "2020-01-03"]
    table = pd.DataFrame({"date": dates, "symbol": "A", "close": [1.0, -1.0]})
    table.to_parquet(tmp_path / "negative.parquet")
    with pytest.raises(PricesFileError, match=r"row 2: A on 2020-01-03: close -1 is not"):
        read_prices_file(tmp_path / "negative.parquet")
