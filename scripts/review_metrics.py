"""Review the metrics of a models directory: ranked tables, flags, plots.

Examples:
    python scripts/review_metrics.py
    python scripts/review_metrics.py --models-dir models/mamba --out reports/review
    python scripts/review_metrics.py --json > review.json
    python scripts/review_metrics.py --prices my_prices.csv      # the symbols of your file
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ml.cli.args import add_data_arguments, symbols_and_prices
from ml.cli.plots import plot_learning_curves, plot_test_forecasts
from ml.cli.progress import report_console
from ml.state_space.atomic import atomic_write_json
from ml.state_space.evaluation.review import build_review
from ml.state_space.registry import DEFAULT_ROOT, ModelRegistry


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--models-dir", default=str(DEFAULT_ROOT))
    add_data_arguments(parser, default_symbols="every trained symbol")
    parser.add_argument("--out", default="reports/review", help="where plots and review.json go")
    parser.add_argument("--json", action="store_true", help="print the review as JSON only")
    parser.add_argument("--no-plots", action="store_true")
    return parser.parse_args(argv)


def _fmt(value: float | None, spec: str = "+.3f") -> str:
    return "" if value is None else format(value, spec)


def print_tables(review: dict, console: Console) -> None:
    for key, rows in review["horizons"].items():
        overview = review["overview"][key]
        table = Table(
            title=f"horizon {key.removeprefix('h')} trading days: {overview['beat_random_walk']}"
            f"/{overview['models']} beat the random walk, median skill "
            f"{_fmt(overview['median_skill_vs_random_walk'])}"
        )
        for column in (
            "#",
            "symbol",
            "skill RW",
            "skill drift",
            "MAE",
            "RW MAE",
            "dir acc",
            "always up",
            "80% cover",
            "best ep",
            "train s",
            "flags",
        ):
            table.add_column(column, justify="left" if column in ("symbol", "flags") else "right")
        for rank, row in enumerate(rows, 1):
            table.add_row(
                str(rank),
                row["symbol"],
                _fmt(row["skill_vs_random_walk"]),
                _fmt(row["skill_vs_drift"]),
                _fmt(row["mae"], ".4f"),
                _fmt(row["random_walk_mae"], ".4f"),
                _fmt(row["directional_accuracy"], ".1%"),
                _fmt(row["always_up_accuracy"], ".1%"),
                _fmt(row["interval_coverage"], ".1%"),
                f"{row['best_epoch']}/{row['epochs_run']}",
                f"{row['training_seconds']:.0f}",
                ", ".join(row["flags"]),
                style="red" if row["flags"] else None,
            )
        console.print(table)
    console.print(
        "skill = 1 - MAE(model)/MAE(baseline) on the held-out test segment (>0 beats it); "
        "RW = random walk (no change); 80% cover = share of outcomes inside the 10-90% band."
    )


def print_backtest(published: dict | None, console: Console) -> None:
    """Rank symbols by walk-forward skill (pooled over the test years), with significance."""
    if not published:
        console.print(
            "[yellow]no walk-forward backtest published for these models[/]: the skill above is "
            "one test segment's. Run: python scripts/backtest.py --symbols BUNDLED --offline"
        )
        return
    first, last = published["years"]
    symbols = published["symbols"]
    horizons = sorted(
        {h for figures in symbols.values() for h in figures}, key=lambda h: int(h[1:])
    )
    for key in horizons:
        rows = sorted(
            ((s, f[key]) for s, f in symbols.items() if key in f),
            key=lambda item: -(item[1]["mae_skill"] or -1e9),
        )
        beats = sum(f["beats_baseline"] for _, f in rows)
        table = Table(
            title=f"walk-forward {first}-{last}, horizon {key[1:]}: {beats}/{len(rows)} "
            f"beat the baseline ({published['model']} vs random walk)"
        )
        for column in (
            "#",
            "symbol",
            "MAE skill",
            "DM p",
            "pinball skill",
            "DM p (pinball)",
            "10-90 cover",
            "windows",
            "verdict",
        ):
            table.add_column(column, justify="left" if column in ("symbol", "verdict") else "right")
        for rank, (symbol, f) in enumerate(rows, 1):
            table.add_row(
                str(rank),
                symbol,
                _fmt(f["mae_skill"]),
                _fmt(f["dm_mae_pvalue"], ".3f"),
                _fmt(f["pinball_skill"]),
                _fmt(f["dm_pinball_pvalue"], ".3f"),
                _fmt(f["band_coverage"], ".1%"),
                str(f["n"]),
                _verdict(f),
                style=None if f["beats_baseline"] else "red",
            )
        console.print(table)
    console.print(f"backtest command: {published.get('command')}")


def _verdict(figures: dict) -> str:
    if figures["significantly_better"]:
        return "significantly better"
    if figures["significantly_worse"]:
        return "significantly worse"
    return "no worse" if figures["beats_baseline"] else "worse"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    registry = ModelRegistry(args.models_dir)
    try:  # --symbols / --prices narrow the review to those symbols
        wanted = symbols_and_prices(args, "")[0] if args.symbols or args.prices else None
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    chosen = [s for s in registry.symbols() if wanted is None or s in wanted]
    if not chosen:
        print(
            f"error: no trained models{' of ' + ', '.join(wanted[:5]) if wanted else ''} "
            f"under {registry.root}; train some first:\n"
            "  python scripts/train_mamba_models.py --symbols BUNDLED",
            file=sys.stderr,
        )
        return 1
    review = build_review(registry, chosen)
    out = Path(args.out)
    if not args.no_plots:
        for symbol in chosen:
            metrics = registry.load_metrics(symbol)
            plot_learning_curves(metrics, out / f"{symbol}_learning_curves.png")
            plot_test_forecasts(metrics, out / f"{symbol}_test_forecasts.png")
    review["backtest"] = registry.load_backtest()
    atomic_write_json(out / "review.json", review)
    if args.json:
        print(json.dumps(review, indent=2))
    else:
        console = report_console()
        print_tables(review, console)
        print_backtest(registry.load_backtest(), console)
        console.print(f"plots and review.json written to {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
