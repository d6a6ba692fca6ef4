"""Review the metrics of a models directory: ranked tables, flags, plots.

Examples:
    python scripts/review_metrics.py
    python scripts/review_metrics.py --models-dir models/mamba --out reports/review
    python scripts/review_metrics.py --json > review.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ml.state_space.atomic import atomic_write_json
from ml.state_space.plots import plot_learning_curves, plot_test_forecasts
from ml.state_space.progress import report_console
from ml.state_space.registry import DEFAULT_ROOT, ModelRegistry
from ml.state_space.review import build_review


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--models-dir", default=str(DEFAULT_ROOT))
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    registry = ModelRegistry(args.models_dir)
    if not registry.symbols():
        print(
            f"error: no trained models under {registry.root}; train some first:\n"
            "  python scripts/train_mamba_models.py --symbols BUNDLED",
            file=sys.stderr,
        )
        return 1
    review = build_review(registry)
    out = Path(args.out)
    if not args.no_plots:
        for symbol in registry.symbols():
            metrics = registry.load_metrics(symbol)
            plot_learning_curves(metrics, out / f"{symbol}_learning_curves.png")
            plot_test_forecasts(metrics, out / f"{symbol}_test_forecasts.png")
    atomic_write_json(out / "review.json", review)
    if args.json:
        print(json.dumps(review, indent=2))
    else:
        console = report_console()
        print_tables(review, console)
        console.print(f"plots and review.json written to {out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
