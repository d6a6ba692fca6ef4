"""Daily price history from, in order: a user's prices file, a Parquet cache, Yahoo Finance,
the bundled data."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.state_space.atomic import atomic_write
from ml.state_space.data.bundled import bundled_dataset, load_bundled
from ml.state_space.data.calendar import last_session_before
from ml.state_space.data.frames import COLUMNS, DataUnavailableError, standardise
from ml.state_space.data.quality import check_price_frame
from ml.state_space.data.symbols import validate_symbol

__all__ = ["DataUnavailableError", "default_cache_dir", "load_bundled", "load_history"]

logger = logging.getLogger(__name__)

OFFLINE_ENV = "MAMBA_FORECAST_OFFLINE"
CACHE_DIR_ENV = "MAMBA_FORECAST_CACHE_DIR"
YAHOO_DEADLINE_S = 10.0  # hard limit for one Yahoo call; the socket timeout is half of it

DateLike = str | date | pd.Timestamp | None


def default_cache_dir() -> Path:
    """``$MAMBA_FORECAST_CACHE_DIR`` or ``~/.cache/mamba-forecast``."""
    return Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "mamba-forecast")


def _offline_from_env() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes"}


# --- Parquet cache ------------------------------------------------------------------------


def _read_cache(path: Path, symbol: str) -> pd.DataFrame | None:
    """The cached frame, or ``None`` if absent; a corrupt file is logged and deleted."""
    if not path.exists():
        return None
    try:
        frame = pd.read_parquet(path)
        if frame.empty or not set(frame.columns) <= set(COLUMNS):
            raise ValueError(f"{len(frame)} rows, columns {list(frame.columns)}")
        check_price_frame(frame, symbol)
    except Exception as exc:  # any parse or content failure means: do not trust the file
        logger.warning("corrupt cache file %s (%s); deleting it", path, exc)
        path.unlink(missing_ok=True)
        return None
    return frame


def _write_cache(path: Path, frame: pd.DataFrame) -> None:
    clean = frame.copy()
    clean.attrs = {}
    try:
        atomic_write(path, lambda tmp: clean.to_parquet(tmp))
    except OSError as exc:
        logger.warning("could not write cache file %s: %s", path, exc)


def _is_fresh(cached: pd.DataFrame, end: DateLike) -> bool:
    """True if the cache reaches the last NYSE session before today (or ``end``)."""
    needed = last_session_before(pd.Timestamp.today())
    if end is not None:
        needed = min(needed, pd.Timestamp(end))
    return bool(cached.index[-1] >= needed)


# --- Yahoo Finance ------------------------------------------------------------------------


def _yahoo_history(symbol: str, start: pd.Timestamp | None, timeout: float) -> pd.DataFrame:
    """The only network call: raw adjusted daily bars from yfinance (tests replace this)."""
    import yfinance as yf  # deferred: offline runs never import it

    when = {"period": "max"} if start is None else {"start": start.strftime("%Y-%m-%d")}
    return yf.Ticker(symbol).history(
        interval="1d", auto_adjust=True, actions=False, timeout=timeout, **when
    )


def _call_with_deadline(fn: Callable[[], pd.DataFrame], deadline_s: float) -> pd.DataFrame:
    """Run ``fn`` in a daemon thread; raise ``TimeoutError`` if it outlives ``deadline_s``."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = fn()
        except Exception as exc:  # re-raised in the caller's thread
            box["error"] = exc

    worker = threading.Thread(target=target, name="yahoo-fetch", daemon=True)
    worker.start()
    worker.join(deadline_s)
    if worker.is_alive():
        raise TimeoutError(f"no answer within {deadline_s:g} s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _fetch_yahoo(symbol: str, start: pd.Timestamp | None = None) -> pd.DataFrame:
    """Validated Yahoo history from ``start`` (all of it if ``None``)."""
    raw = _call_with_deadline(
        lambda: _yahoo_history(symbol, start, YAHOO_DEADLINE_S / 2), YAHOO_DEADLINE_S
    )
    if raw is None or raw.empty:
        raise LookupError("no rows returned (unknown or delisted symbol, or Yahoo unreachable)")
    frame = standardise(raw)
    check_price_frame(frame, symbol)
    return frame


def _refresh(symbol: str, cached: pd.DataFrame | None, path: Path) -> pd.DataFrame:
    """Fetch what the cache lacks (all if no cache), save and return the full history."""
    if cached is None:
        merged = _fetch_yahoo(symbol)
    else:
        last = cached.index[-1]
        new = _fetch_yahoo(symbol, start=last)
        consistent = list(new.columns) == list(cached.columns) and (
            last not in new.index
            or np.isclose(new.at[last, "close"], cached.at[last, "close"], rtol=1e-4)
        )
        if consistent:
            appended = new[new.index > last]
            if appended.empty:
                return cached
            merged = pd.concat([cached, appended])
        else:  # a split or dividend re-adjusted the past: the cache is outdated as a whole
            logger.info("%s: Yahoo re-adjusted history before %s; refetching all", symbol, last)
            merged = _fetch_yahoo(symbol)
    _write_cache(path, merged)
    return merged


# --- public entry point -------------------------------------------------------------------


def _with_attrs(frame: pd.DataFrame, symbol: str, source: str, dataset: str | None) -> pd.DataFrame:
    frame.attrs = {
        "symbol": symbol,
        "source": source,
        **({"dataset": dataset} if dataset else {}),
        "last_date": frame.index[-1].strftime("%Y-%m-%d"),
    }
    return frame


def load_history(
    symbol: str,
    start: DateLike = None,
    end: DateLike = None,
    offline: bool | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    prices: Mapping[str, pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """Daily adjusted prices for ``symbol`` between ``start`` and ``end`` (both inclusive).

    Sources, in order: ``prices`` (frames read from a user's file by
    :func:`~ml.state_space.data.prices_file.read_prices_file`; a symbol there is never
    looked up elsewhere), the Parquet cache (used if fresh, or if offline), Yahoo Finance
    (only what the cache lacks), then the bundled data. ``offline=None`` reads
    ``$MAMBA_FORECAST_OFFLINE``. ``df.attrs`` holds ``symbol``, ``source``, ``last_date``
    and, for bundled or file data, ``dataset``.
    """
    symbol = validate_symbol(symbol)
    if prices is not None and symbol in prices:
        given = prices[symbol]
        return _select(given, symbol, "file", given.attrs.get("dataset"), start, end)
    offline = _offline_from_env() if offline is None else offline
    path = Path(cache_dir or default_cache_dir()) / f"{symbol}.parquet"
    cached = _read_cache(path, symbol)
    tried = [f"cache: no usable file at {path}"]  # only reported when nothing was found
    frame, source = None, "cache"
    if cached is not None and (offline or _is_fresh(cached, end)):
        frame = cached
    elif offline:
        tried.append(f"network: skipped (offline mode via argument or {OFFLINE_ENV})")
    else:
        try:
            frame, source = _refresh(symbol, cached, path), "yahoo"
        except Exception as exc:  # yfinance raises many types; all mean "not from Yahoo now"
            logger.warning("%s: Yahoo Finance failed (%s: %s)", symbol, type(exc).__name__, exc)
            tried.append(f"Yahoo Finance: {type(exc).__name__}: {exc}")
            frame = cached
    dataset = None
    if frame is None and (dataset := bundled_dataset(symbol)) is not None:
        frame, source = load_bundled(symbol, dataset), "bundled"
    if frame is None:
        hint = (
            f"run online (offline=False, unset {OFFLINE_ENV})"
            if offline
            else ("check the symbol (Yahoo spelling, e.g. 'BRK-B') and the network")
        )
        raise DataUnavailableError(
            f"no price data for {symbol!r}; tried {'; '.join(tried)}; not bundled. "
            f"Fix: {hint}, give your own prices (--prices FILE), or pick a bundled symbol "
            "(the SP500 universe, RRC, ^GSPC, ^IXIC)"
        )
    return _select(frame, symbol, source, dataset, start, end)


def _select(
    frame: pd.DataFrame,
    symbol: str,
    source: str,
    dataset: str | None,
    start: DateLike,
    end: DateLike,
) -> pd.DataFrame:
    lo = None if start is None else pd.Timestamp(start)
    hi = None if end is None else pd.Timestamp(end)
    out = frame.loc[lo:hi].copy()
    if out.empty:
        raise DataUnavailableError(
            f"no {symbol} rows between {start} and {end}; the {source} data covers "
            f"{frame.index[0]:%Y-%m-%d} to {frame.index[-1]:%Y-%m-%d}"
        )
    return _with_attrs(out, symbol, source, dataset)
