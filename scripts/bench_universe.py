"""Load the whole bundled universe (404 stocks) and compute every stock's features.

Prints one JSON line: seconds to parse and adjust the universe file, to cut it into 404
frames, and to compute the features (``TimeSeriesFeatureEngineer``, as training does) of
every stock longer than their warm-up, plus the process's peak RSS. Run it in a fresh
process, nothing else running; the goal is <= 10 s and <= 2 GB on 2 cores.

    .venv/bin/python scripts/bench_universe.py
"""

from __future__ import annotations

import json
import platform
import resource
import time


def main() -> None:
    started = time.perf_counter()
    from ml.state_space.data import bundled
    from ml.state_space.features.engineer import TimeSeriesFeatureEngineer

    imported = time.perf_counter()
    bundled._universe_frames()
    parsed = time.perf_counter()
    frames = bundled.load_universe()
    loaded = time.perf_counter()
    rows, too_short = 0, []
    for symbol, prices in frames.items():
        if len(prices) <= TimeSeriesFeatureEngineer.warmup:  # VTRS: listed 2020-11-16
            too_short.append(symbol)
            continue
        rows += len(TimeSeriesFeatureEngineer().resolve(prices).transform(prices))
    featured = time.perf_counter()
    result = {
        "bench": "universe",
        "python": platform.python_version(),
        "symbols": len(frames),
        "feature_rows": rows,
        "shorter_than_the_warm_up": too_short,
        "import_s": round(imported - started, 2),
        "parse_and_adjust_s": round(parsed - imported, 2),
        "frames_s": round(loaded - parsed, 2),
        "features_s": round(featured - loaded, 2),
        "load_to_features_s": round(featured - imported, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
