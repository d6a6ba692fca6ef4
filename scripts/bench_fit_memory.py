"""Measure how a training process's memory grows over consecutive fits.

A worker of the training CLI or of the walk-forward backtest fits one model after
another; whatever a fit leaves alive accumulates. This fits the default model (or
``--epochs`` of it) ``--fits`` times on one symbol's whole bundled history in this
process, dropping each forecaster and collecting garbage in between, and prints the
resident memory after each fit: the growth per fit should be close to zero.

Example:
    python scripts/bench_fit_memory.py --symbol AAPL --fits 5 --epochs 2
"""

from __future__ import annotations

import argparse
import gc
import json
import logging

import psutil

from ml.cli.args import positive_int

MIB = 2**20


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--symbol", default="AAPL", help="a bundled symbol")
    parser.add_argument("--fits", type=positive_int, default=5)
    parser.add_argument("--epochs", type=positive_int, default=2, help="max epochs per fit")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    from ml.state_space.data.sources import load_bundled
    from ml.state_space.models.config import TrainingConfig
    from ml.state_space.models.mamba.forecaster import MambaForecaster

    process = psutil.Process()
    prices = load_bundled(args.symbol)
    config = TrainingConfig(epochs=args.epochs)
    rss = []
    for _ in range(args.fits):
        forecaster = MambaForecaster(training_config=config).fit(prices, symbol=args.symbol)
        forecaster.predict_quantiles(prices, prices.index[-250:])
        del forecaster
        gc.collect()
        rss.append(round(process.memory_info().rss / MIB))
        print(f"fit {len(rss)}: RSS {rss[-1]} MiB", flush=True)
    growth = (rss[-1] - rss[0]) / max(len(rss) - 1, 1)
    print(json.dumps({"symbol": args.symbol, "rss_mib": rss, "growth_mib_per_fit": growth}))


if __name__ == "__main__":
    main()
