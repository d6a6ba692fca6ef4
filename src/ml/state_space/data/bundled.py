"""Real daily prices shipped with the package: the S&P 500 universe, 20 stocks, two indices.

Three datasets (``df.attrs["dataset"]`` names the one a frame came from):

- ``sp500-universe``: 404 S&P 500 members (as of April 2021), daily OHLCV from AlphaVantage,
  1999-11 .. 2021-04, adjusted here: open/high/low by ``adj_close / close``, volume for
  splits only (times the product of all later split coefficients);
- ``sp500-20``: the adjusted close of 20 large caps from Yahoo Finance, 1990 .. 2022-12;
- ``indices``: ^GSPC and ^IXIC OHLCV, 1999 .. 2018.

One rule for the 19 stocks in both stock files: a symbol of the universe always comes from
the universe. ``sp500-20`` serves only the stock the universe lacks (RRC), and whoever asks
for it by name (``load_bundled("AAPL", dataset="sp500-20")``, e.g. to reproduce a
close-only round). A series never mixes the two vendors.
"""

from __future__ import annotations

import csv
import io
import threading
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd

from ml.state_space.data.frames import COLUMNS, DataUnavailableError, standardise, tidy
from ml.state_space.data.symbols import validate_symbol

__all__ = [
    "DATASETS",
    "INDICES",
    "STOCKS_20",
    "UNIVERSE",
    "bundled_dataset",
    "bundled_symbols",
    "load_bundled",
    "load_universe",
    "sectors",
    "universe_bars",
    "universe_symbols",
]

UNIVERSE, STOCKS_20, INDICES = "sp500-universe", "sp500-20", "indices"
DATASETS = (UNIVERSE, STOCKS_20, INDICES)
_UNIVERSE_FILE = "sp500_universe_ohlcv_1999_2021.parquet"
_SECTORS_FILE = "sp500_universe_sectors.csv"
_STOCKS_FILE = "sp500_20_stocks_adjclose_1990_2022.csv.gz"
_INDEX_FILES = {"^GSPC": "gspc_ohlcv_1999_2018.csv.gz", "^IXIC": "ixic_ohlcv_1999_2018.csv.gz"}
#: Symbols whose history the universe records under an older ticker.
RENAMED = {"FB": "META"}
#: Columns of :func:`universe_bars` beyond the adjusted ones: the data as traded.
RAW_COLUMNS = ("raw_open", "raw_high", "raw_low", "raw_close", "raw_volume", "dividend", "split")


def _open_resource(name: str) -> Any:
    return (resources.files("ml.state_space") / "resources" / name).open("rb")


def _later_split_product(symbol: np.ndarray, split: np.ndarray) -> np.ndarray:
    """Per row, the product of the split coefficients on its symbol's later rows."""
    log_split = pd.Series(np.log(split)[::-1])
    from_end = log_split.groupby(symbol[::-1]).cumsum().to_numpy()[::-1]
    return np.exp(from_end - np.log(split))


_PARSING = threading.Lock()  # loaders run in threads: parse the universe once, not per thread


def _universe_frames() -> dict[str, pd.DataFrame]:
    """The universe file, parsed and adjusted once per process: symbol -> bars by date."""
    with _PARSING:
        return _parse_universe()


@lru_cache(maxsize=1)
def _parse_universe() -> dict[str, pd.DataFrame]:
    with _open_resource(_UNIVERSE_FILE) as handle:
        raw = pd.read_parquet(handle)
    symbol = raw["symbol"].replace(RENAMED).to_numpy(dtype=object)
    factor = raw["adj_close"] / raw["close"]
    later_splits = _later_split_product(symbol, raw["split"].to_numpy())
    table = pd.DataFrame({c: raw[c] * factor for c in ("open", "high", "low")})
    table["close"] = raw["adj_close"]
    table["volume"] = raw["volume"] * later_splits
    for column in ("open", "high", "low", "close", "volume"):
        table[f"raw_{column}"] = raw[column].astype("float64")
    table[["dividend", "split"]] = raw[["dividend", "split"]]
    table.index = pd.DatetimeIndex(raw["date"]).as_unit("ns").rename("date")
    bounds = np.flatnonzero(symbol[1:] != symbol[:-1]) + 1
    starts, ends = np.r_[0, bounds], np.r_[bounds, len(symbol)]
    return {symbol[a]: table.iloc[a:b] for a, b in zip(starts, ends, strict=True)}


@lru_cache(maxsize=1)
def _sector_rows() -> tuple[tuple[str, str, str], ...]:
    with _open_resource(_SECTORS_FILE) as handle:
        rows = csv.DictReader(io.TextIOWrapper(handle, encoding="utf-8"))
        return tuple((RENAMED.get(r["symbol"], r["symbol"]), r["name"], r["sector"]) for r in rows)


def universe_symbols() -> tuple[str, ...]:
    """The 404 universe symbols in file order (cheap: read from the sectors file)."""
    return tuple(symbol for symbol, _, _ in _sector_rows())


def sectors() -> dict[str, str]:
    """GICS sector of every universe symbol, e.g. ``{"AAPL": "Information Technology"}``."""
    return {symbol: sector for symbol, _, sector in _sector_rows()}


@lru_cache(maxsize=1)
def _stock_table() -> pd.DataFrame:
    """The 20-stock wide adjusted-close CSV, parsed once per process."""
    with _open_resource(_STOCKS_FILE) as handle:
        return pd.read_csv(handle, compression="gzip", index_col="Date", parse_dates=["Date"])


@lru_cache(maxsize=len(_INDEX_FILES))
def _index_table(symbol: str) -> pd.DataFrame:
    with _open_resource(_INDEX_FILES[symbol]) as handle:
        raw = pd.read_csv(handle, compression="gzip")
    raw.index = pd.to_datetime(raw.pop("Date"), format="%m/%d/%Y")
    return standardise(raw)


def _members(dataset: str) -> tuple[str, ...]:
    if dataset == UNIVERSE:
        return universe_symbols()
    if dataset == STOCKS_20:
        return tuple(_stock_table().columns)
    if dataset == INDICES:
        return tuple(_INDEX_FILES)
    raise ValueError(f"unknown bundled dataset {dataset!r}; choose one of {', '.join(DATASETS)}")


def bundled_dataset(symbol: str) -> str | None:
    """The dataset ``symbol`` is served from by default (the rule above), or ``None``."""
    return next((d for d in DATASETS if symbol in _members(d)), None)


def bundled_symbols() -> tuple[str, ...]:
    """Every symbol available offline: the universe, RRC, then the two indices."""
    return tuple(dict.fromkeys(s for d in DATASETS for s in _members(d)))


def universe_bars(
    symbol: str, start: pd.Timestamp | None = None, end: pd.Timestamp | None = None
) -> pd.DataFrame:
    """A universe symbol's adjusted OHLCV plus :data:`RAW_COLUMNS` (for the quality audit),
    from ``start`` to ``end`` (inclusive; all if unset)."""
    return _universe_frames()[validate_symbol(symbol)].loc[start:end].copy()


def _frame(symbol: str, dataset: str) -> pd.DataFrame:
    if dataset == UNIVERSE:
        return tidy(_universe_frames()[symbol][list(COLUMNS)])
    if dataset == STOCKS_20:
        return tidy(_stock_table()[[symbol]].rename(columns={symbol: "close"}))
    return _index_table(symbol).copy()


def load_bundled(symbol: str, dataset: str | None = None) -> pd.DataFrame:
    """Real history shipped with the package (``source="bundled"``), no network or cache.

    ``dataset=None`` follows the rule above; naming one serves the symbol from it or fails.
    ``df.attrs`` holds ``symbol``, ``source``, ``dataset`` and ``last_date``.
    """
    symbol = validate_symbol(symbol)
    chosen = bundled_dataset(symbol) if dataset is None else dataset
    if chosen is None or symbol not in _members(chosen):
        where = f"in the {dataset} dataset" if dataset else "bundled"
        raise DataUnavailableError(
            f"{symbol!r} is not {where}; the {len(bundled_symbols())} bundled symbols are "
            "the SP500 universe, RRC, ^GSPC and ^IXIC (list them with "
            "ml.state_space.data.bundled.bundled_symbols())"
        )
    frame = _frame(symbol, chosen)
    frame.attrs = {
        "symbol": symbol,
        "source": "bundled",
        "dataset": chosen,
        "last_date": frame.index[-1].strftime("%Y-%m-%d"),
    }
    return frame


def load_universe() -> dict[str, pd.DataFrame]:
    """Every universe symbol's adjusted OHLCV, as :func:`load_bundled` returns it."""
    return {symbol: load_bundled(symbol, UNIVERSE) for symbol in universe_symbols()}
