"""Compare backtest runs of model variants on the windows they share.

Each run directory (written by scripts/backtest.py) contributes its models, renamed
``<run>/<model>``; the random walk of the first run is the common baseline. Only windows
every variant forecast are scored, so the table compares like with like.

Example:
    python scripts/backtest.py --models mamba,rw --years 2015-2017 --out reports/global
    python scripts/backtest.py --models mamba,rw --years 2015-2017 --out reports/vol \\
        --set target_scaling=volatility
    python scripts/compare_backtests.py reports/global reports/vol --models mamba

``--monotone-bands`` also scores each variant with its bands widened so that none is
narrower than a shorter horizon's (what the neural forecasters now do at prediction),
from the saved forecasts, without refitting.

``--ensemble`` also scores ``ensemble/<model>``: the quantiles of each model averaged
over the runs, which is the seed ensemble of ``backtest.py --seeds`` when the runs differ
only in ``--seeds``. ``--against VARIANT`` scores every variant against that one instead
of the random walk (skill and Diebold-Mariano verdicts of one variant over another):

    python scripts/compare_backtests.py reports/k1 reports/k10 --models mamba \
        --against k1/mamba

``--symbols SPEC`` scores only those symbols (a universe name, a file or a comma list):
``--symbols SP500_HOLDOUT`` scores a global model fitted with ``--fit-symbols SP500_FIT``
on the stocks it never saw.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from ml.state_space.data.universe import resolve_symbols
from ml.state_space.evaluation.backtest import ensemble_seeds
from ml.state_space.evaluation.report import (
    BASELINE,
    FORECASTS_FILE,
    calibration_table,
    score_backtest,
    summary_table,
)
from ml.state_space.evaluation.run_store import RunStore
from ml.state_space.evaluation.scoring import quantile_column, quantile_levels
from ml.state_space.models.postprocess import monotone_bands

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


def with_monotone_bands(forecasts: pd.DataFrame) -> pd.DataFrame:
    """A copy of every non-``rw`` variant, named ``<variant>+monotone``, its bands widened
    by :func:`monotone_bands` per window (the horizons one origin forecast)."""
    variants = forecasts[forecasts["model"] != "rw"]
    levels = quantile_levels(forecasts.columns)
    columns = [quantile_column(level) for level in levels]
    wide = variants.pivot_table(
        index=["model", "symbol", "fold", "origin_date"], columns="horizon", values=columns
    )
    horizons = sorted(variants["horizon"].unique())
    cube = np.stack([wide[column].reindex(columns=horizons).to_numpy() for column in columns], -1)
    widened = monotone_bands(cube, levels, horizons)  # (windows, H, Q)
    frames = {
        column: pd.DataFrame(widened[:, :, q], index=wide.index, columns=horizons)
        .stack()
        .rename(column)
        for q, column in enumerate(columns)
    }
    keys = ["model", "symbol", "fold", "origin_date", "horizon"]
    replaced = variants.drop(columns=columns).join(pd.concat(frames, axis=1), on=keys)
    return pd.concat(
        [forecasts, replaced.assign(model=replaced["model"] + "+monotone")], ignore_index=True
    )


def with_ensemble(forecasts: pd.DataFrame) -> pd.DataFrame:
    """Adds ``ensemble/<model>``: each model's quantiles averaged over the runs."""
    variants = forecasts[forecasts["model"] != BASELINE]
    base = variants["model"].str.split("/", n=1).str[1]
    members = variants.assign(model="ensemble/" + base)
    return pd.concat([forecasts, ensemble_seeds(members)], ignore_index=True)


def print_widened_share(forecasts: pd.DataFrame) -> None:
    """How often ``--monotone-bands`` changed a variant's quantiles, per horizon."""
    columns = [quantile_column(level) for level in quantile_levels(forecasts.columns)]
    keys = ["symbol", "fold", "origin_date", "horizon"]
    for name in sorted(set(forecasts.loc[forecasts["model"].str.endswith("+monotone"), "model"])):
        original = forecasts[forecasts["model"] == name.removesuffix("+monotone")]
        widened = forecasts[forecasts["model"] == name]
        both = original.merge(widened, on=keys, suffixes=("", "_widened"))
        changed = ~np.isclose(both[columns], both[[f"{c}_widened" for c in columns]]).all(axis=1)
        shares = pd.Series(changed).groupby(both["horizon"].to_numpy()).mean()
        print(
            f"{name}: bands widened on " + ", ".join(f"{s:.1%} at h{h}" for h, s in shares.items())
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path, help="backtest output directories")
    parser.add_argument("--models", help="comma list of models to compare (default: all)")
    parser.add_argument(
        "--monotone-bands", action="store_true", help="also score each variant's widened bands"
    )
    parser.add_argument(
        "--ensemble", action="store_true", help="also score each model averaged over the runs"
    )
    parser.add_argument(
        "--against", metavar="VARIANT", help="score against this variant, not the random walk"
    )
    parser.add_argument("--symbols", help="score only these symbols (universe, file or list)")
    args = parser.parse_args(argv)
    unfinished = [reason for run in args.runs if (reason := RunStore(run).unfinished())]
    if unfinished:
        print(f"error: {'; '.join(unfinished)}", file=sys.stderr)
        return 2
    missing = [str(run) for run in args.runs if not (run / FORECASTS_FILE).is_file()]
    if missing:
        print(f"error: no {FORECASTS_FILE} in {', '.join(missing)}", file=sys.stderr)
        return 2
    models = set(args.models.split(",")) if args.models else None
    forecasts = load_variants(args.runs, models)
    if args.symbols:
        forecasts = forecasts[forecasts["symbol"].isin(resolve_symbols(args.symbols))]
    if forecasts.empty or "rw" not in set(forecasts["model"]):
        print("error: the runs share no window with a random-walk forecast", file=sys.stderr)
        return 1
    if args.ensemble:
        forecasts = with_ensemble(forecasts)
    if args.monotone_bands:
        forecasts = with_monotone_bands(forecasts)
        print_widened_share(forecasts)
    baseline = args.against or BASELINE
    if baseline not in set(forecasts["model"]):
        known = ", ".join(sorted(set(forecasts["model"])))
        print(f"error: --against {baseline}: no such variant (have {known})", file=sys.stderr)
        return 2
    if args.against:
        forecasts = forecasts[forecasts["model"] != BASELINE]
        print(f"skill and Diebold-Mariano verdicts against {baseline}, not the random walk")
    report = score_backtest(forecasts, baseline)
    for horizon, table in report.summary.groupby("horizon", sort=True):
        print(f"\n## h = {horizon} trading days\n")
        print(summary_table(table))
    print("\n## Calibration per quantile\n")
    print(calibration_table(report.summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
