"""Time the training CLI end to end: wall time, per-symbol time, peak memory, scaling.

Runs ``scripts/train_mamba_models.py`` once per ``--parallel`` value on the same
symbols (offline, into a scratch models dir), sampling the summed RSS of the whole
process tree, and prints one JSON line per run plus a table.

Examples:
    python scripts/bench_training.py --symbols TIER_1 --parallel 10
    python scripts/bench_training.py --symbols AAPL,MSFT,KO,XOM --parallel 1,2,4,10 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

TRAIN = Path(__file__).resolve().parent / "train_mamba_models.py"


def tree_rss(process: psutil.Process) -> int:
    """Resident memory of a process and all its descendants, bytes."""
    total = 0
    for member in [process, *process.children(recursive=True)]:
        try:
            total += member.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total


def run_once(symbols: str, parallel: int, extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-train-") as models:
        command = [
            sys.executable,
            str(TRAIN),
            "--symbols",
            symbols,
            "--parallel",
            str(parallel),
            "--offline",
            "--models-dir",
            models,
            "--log-level",
            "WARNING",
            *extra,
        ]
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        peak = 0
        watcher = psutil.Process(process.pid)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.wait(0.5):
                try:
                    peak = max(peak, tree_rss(watcher))
                except psutil.NoSuchProcess:
                    return

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        _, stderr = process.communicate()
        done.set()
        thread.join()
        wall = time.perf_counter() - started
        [run_file] = Path(models, "runs").glob("*.json")
        run = json.loads(run_file.read_text())
    trained = [o for o in run["outcomes"] if o["status"] == "trained"]
    seconds = sorted(o["seconds"] for o in trained)
    return {
        "parallel": parallel,
        "exit_code": process.returncode,
        "symbols_trained": len(trained),
        "symbols_skipped": len(run["outcomes"]) - len(trained),
        "wall_s": round(wall, 1),
        "per_symbol_median_s": round(seconds[len(seconds) // 2], 1) if seconds else None,
        "per_symbol_max_s": round(seconds[-1], 1) if seconds else None,
        "peak_rss_mb": round(peak / 2**20),
        "stderr_tail": stderr.decode()[-500:] if process.returncode else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--symbols", default="TIER_1")
    parser.add_argument("--parallel", default="10", help="comma list, e.g. 1,2,4,10")
    args, extra = parser.parse_known_args()
    results = []
    for parallel in (int(p) for p in args.parallel.split(",")):
        result = run_once(args.symbols, parallel, extra)
        print(
            json.dumps({"bench": "training", "symbols": args.symbols, "args": extra, **result}),
            flush=True,
        )
        results.append(result)
    base = results[0]["wall_s"]
    print(
        f"\n{'parallel':>8} {'wall s':>8} {'speed-up':>8} {'per-symbol s':>12} {'peak RSS MB':>11}"
    )
    for r in results:
        print(
            f"{r['parallel']:>8} {r['wall_s']:>8} {base / r['wall_s']:>8.2f} "
            f"{r['per_symbol_median_s']!s:>12} {r['peak_rss_mb']:>11}"
        )
    return 0 if all(r["exit_code"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
