"""The command line of a family fitted on every symbol at once: the gated LightGBM
(``scripts/train_gbm_models.py``) and the universe network
(``scripts/train_universe_model.py``).

Both fetch every symbol's history, fit once, save one registry version per fitted
symbol (and the family's shared model last, where it has one), and write and print the
run summary that the per-symbol training run writes.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml.cli.args import positive_int, writable_directory

if TYPE_CHECKING:
    import pandas as pd

    from ml.state_space.training.trainer import GlobalResult

#: Fit the usable histories of the run.
Fit = Callable[["dict[str, pd.DataFrame]"], "GlobalResult"]


def add_arguments(parser: argparse.ArgumentParser, default_symbols: str, default_dir: Path) -> None:
    """The options every such script takes."""
    from ml.state_space.registry import KEEP_VERSIONS

    parser.add_argument(
        "--symbols",
        default=default_symbols,
        help="universe name (SP500, TIER_1, ...) or comma list",
    )
    parser.add_argument("--models-dir", type=writable_directory, default=str(default_dir))
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


def run(
    args: argparse.Namespace, fit: Fit, config: dict[str, Any], horizons: tuple[int, ...]
) -> int:
    """Fetch, fit with ``fit``, save and summarise; the exit code of the run (2 for bad
    symbols). ``config`` is recorded in the run summary."""
    from ml.cli.progress import print_summary
    from ml.state_space.data.universe import resolve_symbols
    from ml.state_space.orchestration.run import RunSummary, SymbolOutcome, fetch_all
    from ml.state_space.registry import SHARED_NAME, ModelRegistry

    try:
        symbols = resolve_symbols(args.symbols)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    registry = ModelRegistry(args.models_dir, keep_versions=args.keep_versions)
    for root in (registry, registry.shared()):
        root.remove_stale_temp_files()
    started, started_at = time.perf_counter(), datetime.now(UTC).isoformat(timespec="seconds")
    histories = asyncio.run(fetch_all(symbols, args.offline))
    outcomes = {
        symbol: SymbolOutcome(symbol, "no_data", str(history))
        for symbol, history in histories.items()
        if isinstance(history, Exception)
    }
    prices = {s: h for s, h in histories.items() if s not in outcomes}
    result = fit(prices) if prices else None
    for symbol, error in (result.failures if result else {}).items():
        outcomes[symbol] = SymbolOutcome(symbol, "bad_data", f"{type(error).__name__}: {error}")
    for member in result.members if result else []:
        metadata = registry.save(member.symbol, member.model_bytes, member.metadata, member.metrics)
        outcomes[member.symbol] = SymbolOutcome(
            member.symbol,
            "trained",
            reason=f"model weight {member.metrics['model_weight']}",
            seconds=member.metrics["training_seconds"],
            test_skill={h: m["skill_vs_random_walk"] for h, m in member.metrics["test"].items()},
            version=metadata["version"],
        )
    if result and result.shared:  # last: the shared model goes live with its members
        shared = result.shared
        registry.shared().save(SHARED_NAME, shared.model_bytes, shared.metadata, shared.metrics)
        logging.getLogger(__name__).info("saved the shared model under %s", registry.shared().root)
    run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{os.getpid()}"
    summary = RunSummary(
        run_id=run_id,
        started_at=started_at,
        seconds=time.perf_counter() - started,
        parallel=1,
        scheduler=None,
        config=config,
        outcomes=[outcomes[s] for s in symbols],
        run_path=str(registry.run_path(run_id)),
    )
    registry.save_run(run_id, summary.to_dict())
    print_summary(summary, horizons)
    return summary.exit_code
