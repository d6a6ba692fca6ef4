"""Argument types shared by the command-line scripts."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd


def parse_setting(text: str) -> tuple[str, object]:
    """``key=value`` of ``--set``, with a JSON value (a bare word is a string)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--set {text!r}: use KEY=VALUE")
    try:
        return key.strip(), json.loads(raw)
    except json.JSONDecodeError:
        return key.strip(), raw


def add_set_argument(parser: argparse.ArgumentParser, help_text: str) -> None:
    """``--set KEY=VALUE``: repeatable, the value as JSON (:func:`parse_setting`)."""
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        type=parse_setting,
        help=help_text,
    )


def apply_settings(
    sections: dict[str, dict[str, Any]], settings: Iterable[tuple[str, object]]
) -> None:
    """Write each ``--set`` ``section.field=value`` into ``sections`` (``""``: the top
    level); ValueError for a field no section has."""
    for key, value in settings:
        section, _, name = key.rpartition(".")
        target = sections.get(section, {})
        if name not in target:
            raise ValueError(f"--set {key}: no such setting")
        target[name] = value


def positive_int(text: str) -> int:
    """An integer >= 1 (``--epochs 0`` is a usage error, not a crash later)."""
    try:
        value = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from error
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from error
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{value} must be a finite number > 0")
    return value


def writable_directory(text: str) -> str:
    """A directory this process can write into, or create: a models directory that is a
    file or read-only is a usage error before any work, not a crash after it. Nothing is
    created here (a run refused later, e.g. for a bad prices file, leaves no directory)."""
    path = Path(text)
    existing = next(p for p in (path, *path.parents) if p.exists() or p == Path(p.anchor))
    reason = None
    if not existing.is_dir():
        reason = f"{existing} is not a directory"
    elif not os.access(existing, os.W_OK | os.X_OK):
        reason = f"{existing} is read-only"
    if reason:
        raise argparse.ArgumentTypeError(f"{text!r} is not a writable directory ({reason})")
    return text


def add_data_arguments(parser: argparse.ArgumentParser, default_symbols: str) -> None:
    """``--symbols`` and ``--prices``, the same in every script that reads prices."""
    parser.add_argument(
        "--symbols",
        help="universe name (TIER_1, BUNDLED, SP500), a file of symbols or prices, or a comma "
        f"list (default: the --prices file's symbols, else {default_symbols})",
    )
    parser.add_argument(
        "--prices",
        metavar="FILE",
        help="your own daily prices (CSV, CSV.gz or Parquet; long: date,symbol,close|adj_close"
        "[,open,high,low,volume], or wide: date + one column per symbol); its symbols are "
        "read from it and nowhere else",
    )


def symbols_and_prices(
    args: argparse.Namespace, default_symbols: str, min_rows: int = 2
) -> tuple[list[str], dict[str, pd.DataFrame] | None]:
    """The symbols to run and the frames of the ``--prices`` file (``None`` without one).

    Raises ``ValueError`` (a ``PricesFileError`` naming file, row and fix) for a bad file
    or symbol spec, before anything is fitted or written.
    """
    from ml.state_space.data.prices_file import read_prices_file
    from ml.state_space.data.universe import resolve_symbols

    prices = read_prices_file(args.prices, min_rows=min_rows) if args.prices else None
    if args.symbols is None:
        return (list(prices) if prices else resolve_symbols(default_symbols)), prices
    return resolve_symbols(args.symbols), prices
