"""Train one Mamba forecaster per symbol, many at once.

Examples:
    python scripts/train_mamba_models.py --symbols TIER_1 --parallel 10
    python scripts/train_mamba_models.py --symbols AAPL,MSFT --epochs 5 --offline
    python scripts/train_mamba_models.py --prices my_prices.csv   # every symbol in the file
    python scripts/train_mamba_models.py --test
    python scripts/train_mamba_models.py --symbols BUNDLED --scheduler tcp://127.0.0.1:8786
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from dataclasses import replace
from typing import TYPE_CHECKING

from ml.cli.args import (
    add_data_arguments,
    positive_float,
    positive_int,
    symbols_and_prices,
    writable_directory,
)
from ml.state_space.models.fallback import FALLBACKS
from ml.state_space.registry import DEFAULT_ROOT, KEEP_VERSIONS, ModelRegistry

if TYPE_CHECKING:
    from ml.state_space.models.config import TrainingConfig

# Spawned workers re-import this module as __mp_main__: TensorFlow is imported inside the
# functions below, so a worker loads it once, quietly, in its initializer.

TEST_SYMBOLS = "AAPL,MSFT,JPM"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    from ml.state_space.models.config import TrainingConfig
    from ml.state_space.models.mamba.model import MambaConfig

    defaults, model_defaults = TrainingConfig(), MambaConfig()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    add_data_arguments(parser, default_symbols="BUNDLED")
    parser.add_argument(
        "--parallel", type=positive_int, default=2, help="worker processes (default 2)"
    )
    parser.add_argument("--epochs", type=positive_int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=positive_int, default=defaults.batch_size)
    parser.add_argument(
        "--days",
        type=positive_int,
        default=defaults.days,
        help="use only the most recent DAYS trading days (default: all the history)",
    )
    parser.add_argument("--seq-len", type=positive_int, default=model_defaults.seq_len)
    parser.add_argument(
        "--horizons", default=",".join(map(str, model_defaults.horizons)), help="e.g. 1,5,10,30"
    )
    parser.add_argument("--d-model", type=positive_int, default=model_defaults.d_model)
    parser.add_argument("--n-layers", type=positive_int, default=model_defaults.n_layers)
    parser.add_argument(
        "--learning-rate", type=positive_float, default=model_defaults.learning_rate
    )
    parser.add_argument("--models-dir", type=writable_directory, default=str(DEFAULT_ROOT))
    parser.add_argument(
        "--offline", action="store_true", default=None, help="never touch the network"
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--resume", action="store_true", help="continue interrupted symbols, skip done ones"
    )
    parser.add_argument(
        "--skip-existing", action="store_true", help="skip symbols that have a model"
    )
    parser.add_argument(
        "--keep-versions",
        type=positive_int,
        default=KEEP_VERSIONS,
        help="model versions kept per symbol for rollback, the current one included "
        "(scripts/model_versions.py lists and rolls back)",
    )
    parser.add_argument("--no-augment", action="store_true", help="train without data augmentation")
    parser.add_argument(
        "--target-scaling",
        choices=("volatility", "global"),
        default=defaults.target_scaling,
        help="divide targets by sigma_60(t)*sqrt(h) (default) or by their training std",
    )
    parser.add_argument(
        "--fallback",
        choices=sorted(FALLBACKS),
        default=defaults.fallback,
        help="the baseline served where the network shows no skill, and blended with where "
        "it does: drift-garch-fhs (the training drift, a GARCH band shaped by the history; "
        "default), drift-garch (a normal GARCH band) or rw",
    )
    parser.add_argument(
        "--no-blend",
        action="store_true",
        help="serve the network alone, without the validation blend with the fallback",
    )
    parser.add_argument(
        "--no-refit",
        action="store_true",
        help="serve the model scored on the test block, not its refit on every price",
    )
    parser.add_argument(
        "--no-xla",
        action="store_true",
        help="run the network without XLA: 2x slower a step at the default size, but no "
        "compile (tiny models and debugging)",
    )
    parser.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://127.0.0.1:8786")
    parser.add_argument(
        "--test",
        action="store_true",
        help=f"quick run: 2 epochs on the last 1,500 days, of {TEST_SYMBOLS} unless\n"
        "--symbols or --prices say which",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def build_config(args: argparse.Namespace) -> TrainingConfig:
    from ml.state_space.models.config import TrainingConfig
    from ml.state_space.models.mamba.model import MambaConfig

    horizons = tuple(int(h) for h in args.horizons.split(","))
    model = replace(
        MambaConfig(),
        seq_len=args.seq_len,
        horizons=horizons,
        d_model=args.d_model,
        n_layers=args.n_layers,
        learning_rate=args.learning_rate,
        jit_compile=not args.no_xla,
    )
    config = TrainingConfig(
        model=model,
        epochs=args.epochs,
        batch_size=args.batch_size,
        days=args.days,
        augment=not args.no_augment,
        seed=args.seed,
        target_scaling=args.target_scaling,
        blend=not args.no_blend,
        fallback=args.fallback,
        refit=not args.no_refit,
    )
    if args.test:
        config = replace(config, epochs=2, days=1500)
    return config


def main(argv: list[str] | None = None) -> int:
    from ml.state_space.execution.pool import native_stderr_silenced

    with native_stderr_silenced():  # TensorFlow's C++ start-up banner
        from ml.cli.progress import make_progress, print_summary
        from ml.state_space.orchestration.run import TrainingRun

    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        config = build_config(args)
        default = TEST_SYMBOLS if args.test else "BUNDLED"  # --test: a quick run of them
        symbols, prices = symbols_and_prices(args, default, config.min_history())
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    run = TrainingRun(
        ModelRegistry(args.models_dir, keep_versions=args.keep_versions),
        config,
        parallel=args.parallel,
        offline=args.offline,
        scheduler=args.scheduler,
        skip_existing=args.skip_existing,
        resume=args.resume,
        prices=prices,
    )
    with make_progress(len(symbols), config.epochs) as progress:
        run.progress = progress
        summary = asyncio.run(run.run(symbols))
    print_summary(summary, config.model.horizons)
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())
