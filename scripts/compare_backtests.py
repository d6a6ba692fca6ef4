"""Compare backtest runs of model variants on the windows they share.

Each run directory (written by scripts/backtest.py) contributes its models, renamed
``<run>/<model>``; the random walk of the first run is the common baseline. Only windows
every variant forecast are scored, so the table compares like with like.

Example:
    python scripts/backtest.py --models mamba,rw --years 2015-2017 --out reports/global
    python scripts/backtest.py --models mamba,rw --years 2015-2017 --out reports/vol \\
        --set target_scaling=volatility
    python scripts/compare_backtests.py reports/global reports/vol --models mamba
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from ml.state_space.evaluation.report import FORECASTS_FILE, score_backtest, summary_table

KEYS = ["symbol", "fold", "origin_date", "horizon"]


def load_variants(runs: list[Path], models: set[str] | None) -> pd.DataFrame:
    """Every run's forecasts of ``models`` (renamed ``run/model``) and one ``rw``, restricted
    to the windows all of them share."""
    frames = []
    for index, run in enumerate(runs):
        forecasts = pd.read_parquet(run / FORECASTS_FILE)
        if index == 0:
            frames.append(forecasts[forecasts["model"] == "rw"])
        chosen = forecasts[forecasts["model"] != "rw"]
        if models:
            chosen = chosen[chosen["model"].isin(models)]
        frames.append(chosen.assign(model=run.name + "/" + chosen["model"]))
    combined = pd.concat(frames, ignore_index=True)
    variants = combined["model"].nunique()
    shared = combined.groupby(KEYS)["model"].transform("nunique") == variants
    return combined[shared].reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path, help="backtest output directories")
    parser.add_argument("--models", help="comma list of models to compare (default: all)")
    args = parser.parse_args(argv)
    missing = [str(run) for run in args.runs if not (run / FORECASTS_FILE).is_file()]
    if missing:
        print(f"error: no {FORECASTS_FILE} in {', '.join(missing)}", file=sys.stderr)
        return 2
    models = set(args.models.split(",")) if args.models else None
    forecasts = load_variants(args.runs, models)
    if forecasts.empty or "rw" not in set(forecasts["model"]):
        print("error: the runs share no window with a random-walk forecast", file=sys.stderr)
        return 1
    report = score_backtest(forecasts)
    for horizon, table in report.summary.groupby("horizon", sort=True):
        print(f"\n## h = {horizon} trading days\n")
        print(summary_table(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
