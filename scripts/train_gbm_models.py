"""Train the gated global LightGBM quantile model on many symbols at once.

One model learns from every symbol's history; each symbol gets its own registry version
(the shared trees, its gate weights against its drift-garch-fhs fallback, test metrics),
served by the API with MAMBA_API_MODELS_DIR=models/lgbm. On the walk-forward backtest of
the 22 bundled series it meets every per-series goal of docs/EVALUATION.md (round 5).

Examples:
    python scripts/train_gbm_models.py --symbols BUNDLED --offline
    python scripts/train_gbm_models.py --symbols AAPL,MSFT,JPM,XOM --models-dir models/lgbm
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from ml.cli.args import positive_int, writable_directory
from ml.state_space.data.universe import resolve_symbols
from ml.state_space.registry import KEEP_VERSIONS, ModelRegistry

DEFAULT_DIR = Path("models") / "lgbm"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--symbols", default="BUNDLED", help="universe name (TIER_1, BUNDLED) or comma list"
    )
    parser.add_argument("--models-dir", type=writable_directory, default=str(DEFAULT_DIR))
    parser.add_argument(
        "--offline", action="store_true", default=None, help="never touch the network"
    )
    parser.add_argument("--seed", type=int, default=42)
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
    from ml.state_space.orchestration.run import RunSummary, SymbolOutcome, fetch_all
    from ml.state_space.training.gbm_trainer import GBMTraining, train_global

    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    try:
        symbols = resolve_symbols(args.symbols)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    registry = ModelRegistry(args.models_dir, keep_versions=args.keep_versions)
    registry.remove_stale_temp_files()
    training = GBMTraining(seed=args.seed)
    started, started_at = time.perf_counter(), datetime.now(UTC).isoformat(timespec="seconds")
    histories = asyncio.run(fetch_all(symbols, args.offline))
    outcomes = {
        symbol: SymbolOutcome(symbol, "no_data", str(history))
        for symbol, history in histories.items()
        if isinstance(history, Exception)
    }
    prices = {s: h for s, h in histories.items() if s not in outcomes}
    results, failures = train_global(prices, training) if prices else ([], {})
    for symbol, error in failures.items():
        outcomes[symbol] = SymbolOutcome(symbol, "bad_data", f"{type(error).__name__}: {error}")
    for result in results:
        metadata = registry.save(result.symbol, result.model_bytes, result.metadata, result.metrics)
        outcomes[result.symbol] = SymbolOutcome(
            result.symbol,
            "trained",
            reason=f"model weight {result.metrics['model_weight']}",
            seconds=result.metrics["training_seconds"],
            test_skill={h: m["skill_vs_random_walk"] for h, m in result.metrics["test"].items()},
            version=metadata["version"],
        )
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{os.getpid()}"
    summary = RunSummary(
        run_id=run_id,
        started_at=started_at,
        seconds=time.perf_counter() - started,
        parallel=1,
        scheduler=None,
        config=training.model().to_dict(),
        outcomes=[outcomes[s] for s in symbols],
        run_path=str(registry.run_path(run_id)),
    )
    registry.save_run(run_id, summary.to_dict())
    print_summary(summary, training.horizons)
    return summary.exit_code


if __name__ == "__main__":
    sys.exit(main())
