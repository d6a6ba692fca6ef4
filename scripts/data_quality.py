"""Audit price data for real-data artefacts, per symbol: a JSON and a Markdown report.

Examples:
    python scripts/data_quality.py                           # the bundled SP500 universe
    python scripts/data_quality.py --symbols TIER_1 --out reports/quality-tier1
    python scripts/data_quality.py --prices my_prices.csv    # every symbol in your file

Universe symbols are audited as traded (raw prices, coded splits and dividends), so the
coded-action rule runs too; other data by the rules its columns allow. The kinds and
their rules: ``ml.state_space.data.artefacts`` and docs/DATA.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

import pandas as pd

from ml.cli.args import add_data_arguments, symbols_and_prices
from ml.state_space.atomic import atomic_write, atomic_write_json
from ml.state_space.data.artefacts import KINDS, Artefact, find_artefacts
from ml.state_space.data.bundled import universe_bars, universe_symbols
from ml.state_space.data.frames import DataUnavailableError
from ml.state_space.data.sources import load_history


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    add_data_arguments(parser, default_symbols="SP500")
    parser.add_argument(
        "--online", action="store_true", help="let symbols outside the bundle come from Yahoo"
    )
    parser.add_argument("--out", default="reports/quality", help="output directory")
    return parser.parse_args(argv)


def bars_to_audit(symbol: str, prices: dict | None, offline: bool) -> pd.DataFrame:
    """A universe symbol as traded; anything else as ``load_history`` gives it."""
    if (prices is None or symbol not in prices) and symbol in universe_symbols():
        return universe_bars(symbol)
    return load_history(symbol, offline=offline, prices=prices)


def markdown(report: dict[str, dict]) -> str:
    """Counts per kind, then one row per flagged symbol."""
    per_kind = Counter(a["kind"] for entry in report.values() for a in entry["artefacts"])
    symbols_per_kind = Counter(
        kind for entry in report.values() for kind in {a["kind"] for a in entry["artefacts"]}
    )
    flagged = {s: e for s, e in report.items() if e["artefacts"]}
    lines = [
        f"# Data quality: {len(report)} symbols, {len(flagged)} with artefacts",
        "",
        "| kind | bars | symbols |",
        "|---|---:|---:|",
        *(f"| {k} | {per_kind[k]} | {symbols_per_kind[k]} |" for k in KINDS),
        "",
        "| symbol | rows | first | last | artefacts (kind: first dates) |",
        "|---|---:|---|---|---|",
    ]
    for symbol, entry in flagged.items():
        by_kind: dict[str, list[str]] = {}
        for artefact in entry["artefacts"]:
            by_kind.setdefault(artefact["kind"], []).append(artefact["date"])
        shown = "; ".join(
            f"{kind}: {', '.join(days[:3])}{f' (+{len(days) - 3})' if len(days) > 3 else ''}"
            for kind, days in by_kind.items()
        )
        lines.append(
            f"| {symbol} | {entry['rows']} | {entry['first']} | {entry['last']} | {shown} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        symbols, prices = symbols_and_prices(args, "SP500")
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    report, missing = {}, []
    for symbol in symbols:
        try:
            bars = bars_to_audit(symbol, prices, offline=not args.online)
        except DataUnavailableError as error:
            missing.append(symbol)
            logging.warning("%s", error)
            continue
        artefacts: list[Artefact] = find_artefacts(symbol, bars)
        report[symbol] = {
            "rows": len(bars),
            "first": f"{bars.index[0]:%Y-%m-%d}",
            "last": f"{bars.index[-1]:%Y-%m-%d}",
            "artefacts": [a.to_dict() for a in artefacts],
        }
    out = Path(args.out)
    atomic_write_json(out / "quality.json", report)
    text = markdown(report)
    atomic_write(out / "quality.md", lambda tmp: tmp.write_text(text, encoding="utf-8"))
    print(text.split("\n\n| symbol")[0])
    print(f"\nquality.json and quality.md written to {out}/")
    if missing:
        print(f"no data for {len(missing)} symbols: {', '.join(missing)}", file=sys.stderr)
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
