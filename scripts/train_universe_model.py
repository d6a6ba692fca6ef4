"""Train the universe network: one Mamba on every symbol's windows, served for any symbol.

One network learns from the windows of every symbol (OHLCV features through one global
normaliser, a fixed number of windows drawn per epoch: docs/EVALUATION.md, round 9).
Each fitted symbol gets its own registry version (the shared network, its gate against
its drift-garch-fhs fallback, test metrics on its held-out block); the network alone is
stored under shared/, and the service forecasts any other symbol with it from that
symbol's history, marked unseen. Serve it with MAMBA_API_MODELS_DIR=models/universe.

Examples:
    python scripts/train_universe_model.py --symbols SP500 --offline
    python scripts/train_universe_model.py --symbols SP500_FIT --offline --set epochs=10
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from ml.cli.args import apply_settings, parse_setting, positive_int, writable_directory
from ml.state_space.data.universe import resolve_symbols
from ml.state_space.registry import KEEP_VERSIONS, SHARED_NAME, ModelRegistry

DEFAULT_DIR = Path("models") / "universe"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--symbols", default="SP500", help="universe name (SP500, SP500_FIT, TIER_1) or comma list"
    )
    parser.add_argument("--models-dir", type=writable_directory, default=str(DEFAULT_DIR))
    parser.add_argument(
        "--offline", action="store_true", default=None, help="never touch the network"
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        type=parse_setting,
        help="override a training setting (as scripts/backtest.py --set), e.g. epochs=10",
    )
    parser.add_argument(
        "--keep-versions",
        type=positive_int,
        default=KEEP_VERSIONS,
        help="model versions kept per symbol for rollback, the current one included",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from ml.cli.progress import print_summary
    from ml.state_space.models.config import TrainingConfig
    from ml.state_space.orchestration.run import RunSummary, SymbolOutcome, fetch_all
    from ml.state_space.training.universe_trainer import UNIVERSE_TRAINING, train_universe

    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        symbols = resolve_symbols(args.symbols)
        settings = replace(UNIVERSE_TRAINING, seed=args.seed).to_dict()
        apply_settings({"": settings, "model": settings["model"]}, args.set)
        config = TrainingConfig.from_dict(settings)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    registry = ModelRegistry(args.models_dir, keep_versions=args.keep_versions)
    registry.remove_stale_temp_files()
    registry.shared().remove_stale_temp_files()
    started, started_at = time.perf_counter(), datetime.now(UTC).isoformat(timespec="seconds")
    histories = asyncio.run(fetch_all(symbols, args.offline))
    outcomes = {
        symbol: SymbolOutcome(symbol, "no_data", str(history))
        for symbol, history in histories.items()
        if isinstance(history, Exception)
    }
    prices = {s: h for s, h in histories.items() if s not in outcomes}
    try:
        result = train_universe(prices, config, registry.root / "checkpoints" / SHARED_NAME)
    except ValueError as error:  # no usable symbol at all
        print(f"error: {error}", file=sys.stderr)
        return 1
    for symbol, error in result.failures.items():
        outcomes[symbol] = SymbolOutcome(symbol, "bad_data", f"{type(error).__name__}: {error}")
    for member in result.members:
        metadata = registry.save(member.symbol, member.model_bytes, member.metadata, member.metrics)
        outcomes[member.symbol] = SymbolOutcome(
            member.symbol,
            "trained",
            reason=f"model weight {member.metrics['model_weight']}",
            seconds=member.metrics["training_seconds"],
            test_skill={h: m["skill_vs_random_walk"] for h, m in member.metrics["test"].items()},
            version=metadata["version"],
        )
    if result.shared is not None:  # last: unseen symbols get the new network with its members
        shared = result.shared
        registry.shared().save(SHARED_NAME, shared.model_bytes, shared.metadata, shared.metrics)
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{os.getpid()}"
    summary = RunSummary(
        run_id=run_id,
        started_at=started_at,
        seconds=time.perf_counter() - started,
        parallel=1,
        scheduler=None,
        config=config.to_dict(),
        outcomes=[outcomes[s] for s in symbols],
        run_path=str(registry.run_path(run_id)),
    )
    registry.save_run(run_id, summary.to_dict())
    print_summary(summary, config.model.horizons)
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())
