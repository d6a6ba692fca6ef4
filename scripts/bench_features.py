"""Time ``TimeSeriesFeatureEngineer.transform`` on 2,000 real rows.

Cases: AAPL close only (the ``sp500-20`` dataset, tail of 1990-2022) and ^GSPC (OHLCV).
Prints one JSON line with the median and p10 wall time per case (ms) over ``--repeats``
runs after ``--warmup-runs`` untimed ones.

    .venv/bin/python scripts/bench_features.py --rows 2000 --repeats 50
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from ml.state_space.data.sources import load_bundled
from ml.state_space.features.engineer import TimeSeriesFeatureEngineer

CASES = {"AAPL": "sp500-20", "^GSPC": "indices"}


def time_transform(symbol: str, rows: int, repeats: int, warmup_runs: int) -> dict[str, object]:
    prices = load_bundled(symbol, dataset=CASES[symbol]).iloc[-rows:]
    engineer = TimeSeriesFeatureEngineer().resolve(prices)
    for _ in range(warmup_runs):
        features = engineer.transform(prices)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        features = engineer.transform(prices)
        times.append(time.perf_counter() - start)
    ms = np.asarray(times) * 1e3
    return {
        "rows": len(prices),
        "columns": list(prices.columns),
        "features": features.shape[1],
        "median_ms": round(float(np.median(ms)), 2),
        "p10_ms": round(float(np.percentile(ms, 10)), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--warmup-runs", type=int, default=3)
    args = parser.parse_args()
    result = {
        "bench": "features.transform",
        "python": platform.python_version(),
        "cases": {
            symbol: time_transform(symbol, args.rows, args.repeats, args.warmup_runs)
            for symbol in CASES
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
