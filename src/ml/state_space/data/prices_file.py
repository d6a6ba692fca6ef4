"""A user's own daily prices: one CSV, CSV.gz or Parquet file, long or wide.

- **long**: columns ``date, symbol, close`` (or ``adj_close``), optionally ``open, high,
  low, volume``; one row per symbol and day;
- **wide**: a ``date`` column and one column of closes per symbol (empty cells, e.g. before
  a listing, are skipped).

Column names are case-insensitive (``Date``, ``Adj Close``). With ``adj_close`` and a raw
``close``, open/high/low are adjusted by their ratio, as for Yahoo data. Any problem raises
:class:`PricesFileError`, naming the file, the line (CSV, counting the header as line 1) or
row (Parquet), the symbol, and the fix; nothing is read half.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from ml.state_space.data.frames import standardise
from ml.state_space.data.symbols import InvalidSymbolError, validate_symbol

__all__ = ["PricesFileError", "is_prices_file", "read_prices_file", "symbols_in_prices_file"]

logger = logging.getLogger(__name__)

SUFFIXES = (".csv", ".csv.gz", ".parquet")
VALUE_COLUMNS = ("open", "high", "low", "close", "adj_close", "volume")
_PRICES = ("open", "high", "low", "close", "adj_close")

PathLike = str | os.PathLike[str]


class PricesFileError(ValueError):
    """A prices file that cannot be used as it is; the message says where and how to fix it."""


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in SUFFIXES if name.endswith(s)), None)


def is_prices_file(path: PathLike) -> bool:
    """True for an existing file whose name ends in one of :data:`SUFFIXES`."""
    path = Path(path)
    return _suffix(path) is not None and path.is_file()


def _key(column: object) -> str:
    return str(column).strip().lower().replace(" ", "_")


def _read_table(path: Path) -> tuple[pd.DataFrame, Callable[[int], str]]:
    """The file as strings/numbers, and how to name its n-th data row in a message."""
    suffix = _suffix(path)
    if suffix is None:
        raise PricesFileError(
            f"{path}: unsupported file type; give a .csv, .csv.gz or .parquet file"
        )
    if path.is_dir():
        raise PricesFileError(f"{path}: is a directory; give the prices file inside it")
    if not path.is_file():
        raise PricesFileError(f"{path}: no such file; check the path")
    try:
        if suffix == ".parquet":
            table = pd.read_parquet(path)
            return table.reset_index(drop=table.index.name is None), lambda n: f"row {n + 1}"
        header = pd.read_csv(path, nrows=1, header=None, dtype=str).iloc[0].tolist()
        repeated = sorted({c for c in header if header.count(c) > 1})
        if repeated:
            raise PricesFileError(
                f"{path}: column(s) {', '.join(repeated)} appear more than once in the "
                "header; keep one column per symbol"
            )
        # blank lines kept as empty rows, then dropped: the index stays each row's line - 2
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skip_blank_lines=False)
        if not isinstance(table.index, pd.RangeIndex):  # pandas took the extra as an index
            raise PricesFileError(
                f"{path}: the lines hold more values than the header has column names (a "
                "comma inside a number, or an unnamed column); name every column and write "
                "numbers without thousands separators"
            )
        blank = table.apply(lambda column: column.fillna("").str.strip() == "").all(axis=1)
        return table[~blank], lambda n: f"line {n + 2}"
    except PricesFileError:
        raise
    except Exception as exc:  # pandas/pyarrow raise many types for unreadable files
        raise PricesFileError(
            f"{path}: cannot be read as {suffix} ({type(exc).__name__}: {exc}); "
            "check that the file is complete and in that format"
        ) from exc


def _long_table(table: pd.DataFrame, path: Path) -> pd.DataFrame:
    """``date, symbol, <values>, position`` from either layout."""
    keys = [_key(c) for c in table.columns]
    clashes = sorted({k for k in keys if keys.count(k) > 1})
    if clashes:
        named = [str(c) for c in table.columns if _key(c) in clashes]
        raise PricesFileError(
            f"{path}: columns {', '.join(map(repr, named))} differ only in case or spaces, "
            "so they name the same thing; keep one of them"
        )
    if "date" not in keys:
        raise PricesFileError(
            f"{path}: no 'date' column (columns: {', '.join(map(str, table.columns))}); "
            "name the column of trading days 'date'"
        )
    table = table.copy()
    table["position"] = np.asarray(table.index)  # where each row is in the file
    if "symbol" in keys:
        table.columns = [*keys, "position"]
        if not {"close", "adj_close"} & set(keys):
            raise PricesFileError(
                f"{path}: a long file (with a 'symbol' column) needs a 'close' or "
                f"'adj_close' column; found {', '.join(keys)}"
            )
        ignored = sorted(set(keys) - {"date", "symbol", *VALUE_COLUMNS})
        if ignored:
            logger.info("%s: ignoring column(s) %s", path, ", ".join(ignored))
        return table[["date", "symbol", *[c for c in VALUE_COLUMNS if c in keys], "position"]]
    date_column = table.columns[keys.index("date")]
    long = table.melt(id_vars=[date_column, "position"], var_name="symbol", value_name="close")
    long = long.rename(columns={date_column: "date"})
    blank = long["close"].isna() | (long["close"].astype(str).str.strip() == "")
    return long[~blank][["date", "symbol", "close", "position"]]


def _fail(path: Path, where: str, message: str, fix: str) -> PricesFileError:
    return PricesFileError(f"{path}, {where}: {message}; {fix}")


EXCHANGE_TIMEZONE = "America/New_York"


def _dates(column: pd.Series) -> pd.Series:
    """Each row's trading day (NaT where it is not a date): a time of day is dropped, and a
    date with a timezone or UTC offset is first converted to New York time (the exchange's
    day). Two rows of one symbol on the same day are then refused by :func:`_check_dates`."""
    if isinstance(column.dtype, pd.DatetimeTZDtype):
        return column.dt.tz_convert(EXCHANGE_TIMEZONE).dt.tz_localize(None).dt.normalize()
    if pd.api.types.is_datetime64_dtype(column.dtype):
        return column.dt.normalize()
    text = column.astype(str).str.strip()
    return text.map({value: _day(value) for value in text.unique()}).astype("datetime64[ns]")


def _day(text: str) -> pd.Timestamp:
    """One cell's trading day, NaT if it is not a date (parsed once per distinct value)."""
    try:
        stamp = pd.Timestamp(text)
    except (ValueError, TypeError, OverflowError):
        return pd.NaT
    if pd.isna(stamp):
        return pd.NaT
    if stamp.tz is not None:
        stamp = stamp.tz_convert(EXCHANGE_TIMEZONE).tz_localize(None)
    return stamp.normalize()


def _shown(value: object) -> str:
    """A cell's value as the user wrote it: a string quoted, a number plain."""
    if isinstance(value, str):
        return repr(value)
    try:
        return f"{float(value):g}"
    except (TypeError, ValueError):
        return repr(value)


def _date_hint(rows: pd.DataFrame) -> str:
    """A hint for dates that may have been read in the wrong order of day and month."""
    if rows["raw_date"].astype(str).str.contains("/").any():
        return (
            " (dates with '/' are read month first where they can be, e.g. 03/04/2016 as "
            "March 4: write them as YYYY-MM-DD)"
        )
    return ""


def _parse(long: pd.DataFrame, path: Path, where: Callable[[int], str]) -> pd.DataFrame:
    """Dates, symbols and numbers parsed and checked value by value."""
    dates = _dates(long["date"])
    if dates.isna().any():
        row = long[dates.isna()].iloc[0]
        raise _fail(
            path, where(row.position), f"date {row.date!r} is not a date",
            "write dates as YYYY-MM-DD",
        )
    long = long.assign(date=dates, raw_date=long["date"])
    symbols = {}
    for name in long["symbol"].unique():
        try:
            symbols[name] = validate_symbol(str(name))
        except InvalidSymbolError as exc:
            row = long[long["symbol"] == name].iloc[0]
            raise _fail(path, where(row.position), str(exc), "fix the symbol") from exc
    long = long.assign(symbol=long["symbol"].map(symbols))
    for column in [c for c in VALUE_COLUMNS if c in long.columns]:
        values = pd.to_numeric(long[column], errors="coerce").astype("float64")
        bad = ~np.isfinite(values) | ((values <= 0) if column in _PRICES else (values < 0))
        if bad.any():
            row = long[bad].iloc[0]
            what = "positive number" if column in _PRICES else "number >= 0"
            raise _fail(
                path, where(row.position),
                f"{row.symbol} on {row.date:%Y-%m-%d}: {column} {_shown(row[column])} is not a "
                f"finite {what}",
                "correct the value or remove the row",
            )
        long[column] = values
    return long


def _check_dates(rows: pd.DataFrame, symbol: str, path: Path, where: Callable[[int], str]) -> None:
    dates = rows["date"]
    repeated = dates.duplicated()
    if repeated.any():
        row = rows[repeated].iloc[0]
        raise _fail(
            path, where(row.position),
            f"{symbol} has {row.date:%Y-%m-%d} more than once{_date_hint(rows)}",
            "keep one row per symbol and date (a time of day does not make another day)",
        )
    falling = dates.diff() < pd.Timedelta(0)
    if falling.any():
        row = rows[falling].iloc[0]
        raise _fail(
            path, where(row.position),
            f"{symbol}'s dates are not in ascending order ({row.date:%Y-%m-%d} after a "
            f"later date){_date_hint(rows)}",
            "sort the file by symbol and date",
        )


def read_prices_file(path: PathLike, min_rows: int = 2) -> dict[str, pd.DataFrame]:
    """Every symbol's frame (as :func:`~ml.state_space.data.sources.load_history` returns
    them: ``source="file"``, ``dataset`` = the file name), in the file's order.

    ``min_rows``: the fewest rows a symbol may have (e.g. what training needs).
    """
    path = Path(path)
    table, where = _read_table(path)
    long = _parse(_long_table(table, path), path, where)
    if long.empty:
        raise PricesFileError(f"{path}: no prices in the file; add rows of date and close")
    frames = {}
    for symbol, rows in long.groupby("symbol", sort=False):
        _check_dates(rows, symbol, path, where)
        if len(rows) < min_rows:
            raise PricesFileError(
                f"{path}: {symbol} has {len(rows)} rows of prices but at least {min_rows} "
                "are needed; give a longer history or leave the symbol out"
            )
        frame = standardise(rows.set_index("date").drop(columns=["symbol", "position", "raw_date"]))
        frame.attrs = {"symbol": symbol, "source": "file", "dataset": path.name}
        frames[symbol] = frame
    return frames


def symbols_in_prices_file(path: PathLike) -> list[str]:
    """The symbols of a prices file, in its order (the file is read and checked whole)."""
    return list(read_prices_file(path))
