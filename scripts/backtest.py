"""Walk-forward backtest: refit every model before each test year, score it next to baselines.

Examples:
    python scripts/backtest.py --symbols BUNDLED --years 2016-2020 --offline
    python scripts/backtest.py --symbols AAPL,MSFT --years 2019-2020 --models rw,garch,mamba
    python scripts/backtest.py --symbols SP500 --years 2016-2020 --models lgbm,garch,rw
    python scripts/backtest.py --prices my_prices.csv --years 2021-2023 --models garch,rw
    # LightGBM fitted on the bundled universe, scored on your own symbols
    python scripts/backtest.py --fit-symbols SP500 --prices my_prices.csv --years 2016-2020 \
        --models lgbm,garch,rw --offline
    # the close-only rounds of docs/EVALUATION.md: the 20-stock file to 2022, from
    # src/ml/state_space/resources/
    python scripts/backtest.py --years 2018-2022 --prices sp500_20_stocks_adjclose_1990_2022.csv.gz

Writes forecasts.parquet, summary.json, report.md and PNG plots under --out; prints the
summary table. Each finished task's forecasts land in --out/tasks/ as it ends and
progress.json says where the run stands, so a stopped run continues with --resume:
    python scripts/backtest.py --symbols SP500 --years 2016-2020 --models mamba,rw \
        --set pooled=true --set pooled_normalizer=global --out reports/u --resume
Definitions of every number: docs/EVALUATION.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shlex
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from ml.cli.args import (
    add_data_arguments,
    add_set_argument,
    apply_settings,
    positive_int,
    symbols_and_prices,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

    from ml.state_space.evaluation.backtest import BacktestConfig
    from ml.state_space.models.config import TrainingConfig
    from ml.state_space.models.gbm import GBMConfig

# Spawned workers re-import this module as __mp_main__: the library is imported inside
# main(), so a worker loads TensorFlow once, in its initializer.


def parse_years(text: str) -> tuple[int, ...]:
    """``2008-2022`` or ``2019,2021`` -> years."""
    try:
        if "-" in text:
            first, last = (int(part) for part in text.split("-", 1))
            years = tuple(range(first, last + 1))
        else:
            years = tuple(int(part) for part in text.split(","))
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"--years {text!r}: use 2008-2022 or 2019,2021") from error
    if not years or min(years) < 1900 or max(years) > 2100:
        raise argparse.ArgumentTypeError(f"--years {text!r} gives no usable year")
    return years


def model_settings(args: argparse.Namespace) -> tuple[TrainingConfig, GBMConfig]:
    """The default TrainingConfig and GBMConfig with the command line's overrides."""
    from ml.state_space.models.config import TrainingConfig
    from ml.state_space.models.gbm import GBMConfig

    training, gbm = TrainingConfig().to_dict(), asdict(GBMConfig())
    apply_settings({"": training, "model": training["model"], "gbm": gbm}, args.set)
    if args.epochs:
        training["epochs"] = args.epochs
    if args.days:
        training["days"] = args.days
    return TrainingConfig.from_dict(training), GBMConfig(**gbm)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    add_data_arguments(parser, default_symbols="BUNDLED")
    parser.add_argument(
        "--fit-symbols",
        help="fit the global models (lgbm; a neural one with --set pooled=true) on these\n"
        "symbols instead of the --symbols: a universe name (SP500_FIT: the universe but\n"
        "the fifth SP500_HOLDOUT), a file or a comma list; they forecast the --symbols,\n"
        "seen or not (a pooled network with --set pooled_normalizer=global)",
    )
    parser.add_argument(
        "--years",
        type=parse_years,
        default=parse_years("2016-2020"),
        help="test years: FIRST-LAST or a comma list; one fold per calendar year",
    )
    parser.add_argument(
        "--models",
        default="mamba,lstm,lgbm,rw,empirical,drift,garch,drift-garch-fhs",
        help="comma list",
    )
    parser.add_argument("--seeds", default="42", help="neural seeds; several = seed ensemble")
    parser.add_argument("--epochs", type=positive_int, help="max epochs of the neural models")
    parser.add_argument("--days", type=positive_int, help="training days of the neural models")
    add_set_argument(
        parser,
        "override a TrainingConfig field (model.<field> for the network, gbm.<field> for\n"
        "LightGBM), value as JSON: --set target_scaling=volatility --set days=null\n"
        "--set model.d_model=32 --set gbm.num_leaves=31",
    )
    parser.add_argument(
        "--warm-start",
        action="store_true",
        help="fit each neural fold from the previous fold's weights (a symbol's folds run\n"
        "in year order in one task)",
    )
    parser.add_argument("--parallel", type=positive_int, default=2, help="worker processes")
    parser.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://127.0.0.1:8786")
    parser.add_argument("--offline", action="store_true", default=None, help="bundled data only")
    parser.add_argument(
        "--out",
        default="reports/backtest",
        help="output directory: each finished task's forecasts land in <out>/tasks/ as it\n"
        "ends, progress.json says where the run stands",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out (killed or interrupted): its finished tasks are\n"
        "kept, the rest run; refused if its settings or data differ from this command's",
    )
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument(
        "--models-dir",
        help="publish the served family's figures here for the service and the review\n"
        "(backtest.json; default models/<family>: models/mamba, models/lgbm)",
    )
    parser.add_argument("--no-publish", action="store_true", help="do not write backtest.json")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def publish_dirs(
    models: Sequence[str], models_dir: str | None, no_publish: bool
) -> dict[str, Path]:
    """Where each served family of the run publishes its figures."""
    from ml.state_space.models.families import FAMILIES

    families = [] if no_publish else [m for m in models if m in FAMILIES and FAMILIES[m].served]
    if models_dir is not None and len(families) > 1:
        raise ValueError(
            f"--models-dir names one directory, but {families} would all publish there; "
            "backtest one served family per run or leave --models-dir out"
        )
    return {family: Path(models_dir or Path("models") / family) for family in families}


def fit_symbols_of(args: argparse.Namespace, config: BacktestConfig) -> list[str] | None:
    """The ``--fit-symbols`` (None without the option); ValueError if no model is global."""
    from ml.state_space.data.universe import resolve_symbols

    if args.fit_symbols is None:
        return None
    if not any(config.is_global(model) for model in config.models):
        raise ValueError(
            "--fit-symbols chooses what the global models (lgbm, pooled networks) are fitted on; "
            f"--models {','.join(config.models)} has none"
        )
    return resolve_symbols(args.fit_symbols)


def load_usable(
    symbols: Sequence[str], offline: bool | None, user_prices: dict[str, pd.DataFrame] | None
) -> dict[str, pd.DataFrame]:
    """The screened history of every symbol that has usable data (the others are logged)."""
    from ml.state_space.orchestration.run import fetch_all

    histories = asyncio.run(fetch_all(symbols, offline, user_prices))
    skipped = [s for s, h in histories.items() if isinstance(h, Exception)]
    if skipped:
        logging.warning("no usable data for %d symbols: %s", len(skipped), ", ".join(skipped))
    return {s: h for s, h in histories.items() if not isinstance(h, Exception)}


def cpu_name() -> str:
    """The CPU model (timings depend on it)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    from ml.state_space.execution.pool import native_stderr_silenced

    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    with native_stderr_silenced():  # TensorFlow's C++ start-up banner
        from ml.cli.progress import make_task_progress, print_backtest_summary
        from ml.state_space.evaluation.backtest import BacktestConfig, run_backtest
        from ml.state_space.evaluation.progress import BacktestProgress
        from ml.state_space.evaluation.report import (
            published_figures,
            score_backtest,
            write_backtest,
        )
        from ml.state_space.evaluation.run_store import ResumeMismatch, RunStore
        from ml.state_space.execution.pool import local_workers
        from ml.state_space.registry import ModelRegistry
    try:
        symbols, user_prices = symbols_and_prices(args, "BUNDLED")
        training, gbm = model_settings(args)
        config = BacktestConfig(
            years=args.years,
            models=tuple(m.strip() for m in args.models.split(",") if m.strip()),
            training=training,
            gbm=gbm,
            seeds=tuple(int(s) for s in args.seeds.split(",")),
            warm_start=args.warm_start,
        )
        published = publish_dirs(config.models, args.models_dir, args.no_publish)
        fit_symbols = fit_symbols_of(args, config)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    prices = load_usable(symbols, args.offline, user_prices)
    fit_prices = load_usable(fit_symbols, args.offline, user_prices) if fit_symbols else None
    if not prices or fit_prices == {}:
        print("error: no symbol has data; try --offline with --symbols BUNDLED", file=sys.stderr)
        return 1
    out = Path(args.out)
    store = RunStore(out)
    with make_task_progress() as display:
        progress = BacktestProgress(store, local_workers(args.parallel), display)
        try:
            result = asyncio.run(
                run_backtest(
                    prices,
                    config,
                    args.parallel,
                    args.scheduler,
                    progress,
                    fit_prices,
                    store,
                    args.resume,
                )
            )
        except ResumeMismatch as error:
            print(f"error: {error}", file=sys.stderr)
            return 2
    if result.forecasts.empty:
        print("error: every task failed; see the log above", file=sys.stderr)
        return 1
    report = score_backtest(result.forecasts)
    facts = {
        "command": shlex.join(["python", "scripts/backtest.py", *(argv or sys.argv[1:])]),
        "symbols": ",".join(prices),
        **({"fit_symbols": ",".join(fit_prices)} if fit_prices else {}),
        "cpu": cpu_name(),
        "parallel": args.parallel,
    }
    write_backtest(out, result, report, config, facts)
    if not args.no_plots:
        from ml.cli.plots import plot_reliability, plot_skill_by_year

        plot_skill_by_year(report.fold_summary, out / "skill_by_year.png")
        plot_reliability(result.forecasts, out / "reliability.png")
    for family, directory in published.items():
        figures = published_figures(report.scores, family, config, facts)
        path = ModelRegistry(directory).save_backtest(figures)
        print(f"{family} backtest figures published to {path} (served with each forecast)")
    print_backtest_summary(report.summary, result.seconds, len(result.failures))
    print(f"forecasts, summary.json, report.md and plots written to {out}/")
    return 1 if result.failures else 0


if __name__ == "__main__":
    sys.exit(main())
