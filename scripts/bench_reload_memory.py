"""Measure how the service's memory grows while models are loaded and reloaded.

Cycles the registry's symbols through the service's own model cache (LRU of
``--cache-size``), so with more symbols than slots every lookup loads a model: what hot
reloads and evictions do in production. After one warm-up pass (the shared inference
function of each architecture compiles once), it loads ``--reloads`` more models, one
forecast each, and prints the resident-memory growth: it should stay flat.

Example:
    python scripts/bench_reload_memory.py --models-dir models/mamba --reloads 200
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

import psutil

from ml.cli.args import positive_int

MIB = 2**20
ROOT = Path(__file__).resolve().parents[1]  # holds the service package api/, as for uvicorn


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--models-dir", default="models/mamba")
    parser.add_argument("--reloads", type=positive_int, default=200)
    parser.add_argument("--cache-size", type=positive_int, default=2)
    parser.add_argument(
        "--clear-every",
        type=int,
        help="loads between clears of TensorFlow's kernel cache (0: never; default: the "
        "service's, api.model_cache.CLEAR_EVERY_LOADS)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(ROOT))
    from api import model_cache
    from api.metrics import ApiMetrics
    from api.service import PredictionService
    from api.settings import Settings

    if args.clear_every is not None:
        model_cache.CLEAR_EVERY_LOADS = args.clear_every

    settings = Settings(models_dir=args.models_dir, offline=True, model_cache_size=args.cache_size)
    service = PredictionService(settings, ApiMetrics())
    symbols = service.scan()
    if len(symbols) <= args.cache_size:
        print(
            f"error: {len(symbols)} models in {args.models_dir}; need more than --cache-size "
            f"{args.cache_size} so that every lookup loads one",
            file=sys.stderr,
        )
        return 2
    process = psutil.Process()

    def load(symbol: str) -> None:
        entry = service.models.get(symbol)
        prices, _ = service.history.get(symbol, entry.forecaster.history_rows)
        entry.forecaster.predict(prices)

    for symbol in symbols:  # warm-up: each architecture compiles once
        load(symbol)
    gc.collect()
    baseline = process.memory_info().rss
    started = time.perf_counter()
    for i in range(args.reloads):
        load(symbols[i % len(symbols)])
    gc.collect()
    grown = (process.memory_info().rss - baseline) / MIB
    seconds = time.perf_counter() - started
    print(
        f"{args.reloads} model loads over {len(symbols)} symbols, cache of {args.cache_size}: "
        f"RSS {baseline / MIB:.0f} MiB after warm-up, +{grown:.1f} MiB after the loads "
        f"({grown / args.reloads * 1024:.0f} KiB per load), {seconds / args.reloads * 1e3:.0f} ms "
        "per load"
    )
    result = {
        "reloads": args.reloads,
        "symbols": len(symbols),
        "cache_size": args.cache_size,
        "rss_after_warmup_mib": round(baseline / MIB, 1),
        "rss_growth_mib": round(grown, 1),
        "ms_per_load": round(seconds / args.reloads * 1e3, 1),
        "clear_every_loads": model_cache.CLEAR_EVERY_LOADS,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
