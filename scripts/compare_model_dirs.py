"""Compare two models directories symbol by symbol: validation losses, best epochs, forecasts.

For checking that a change which should not touch the numbers (a faster allocator, a
refactoring) leaves every trained model the same: per symbol, the per-epoch validation
losses and the best epoch from the metrics JSON, and the served forecast (every quantile
at every horizon) from the bundled prices. Exit 0 when everything is bit-identical.

    python scripts/compare_model_dirs.py /tmp/before/parallel-10 /tmp/after/parallel-10
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ml.state_space.data.sources import load_history
from ml.state_space.forecast import ServedModel
from ml.state_space.registry import ModelRegistry


def fingerprint(registry: ModelRegistry, symbol: str) -> dict:
    """The numbers a trained symbol is judged and served by."""
    metrics = registry.load_metrics(symbol)
    served = ServedModel.from_artifacts(registry.load_artifacts(symbol), {})
    forecast = served.predict(load_history(symbol, offline=True))
    return {
        "val_loss": [epoch.get("val_loss") for epoch in metrics["epochs"]],
        "best_epoch": metrics.get("best_epoch"),
        "forecast": [(h.horizon, sorted(h.log_return.items())) for h in forecast.horizons],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("first", type=Path)
    parser.add_argument("second", type=Path)
    args = parser.parse_args()
    first, second = ModelRegistry(args.first), ModelRegistry(args.second)
    symbols = sorted(set(first.symbols()) | set(second.symbols()))
    differing = []
    for symbol in symbols:
        if not (first.has_model(symbol) and second.has_model(symbol)):
            differing.append(symbol)
            print(f"{symbol}: trained in one directory only")
            continue
        a, b = fingerprint(first, symbol), fingerprint(second, symbol)
        same = [name for name in a if a[name] == b[name]]
        if len(same) != len(a):
            differing.append(symbol)
        print(f"{symbol}: identical {', '.join(same) or 'nothing'}; best epoch {a['best_epoch']}")
    print(f"{len(symbols) - len(differing)} of {len(symbols)} symbols bit-identical")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
