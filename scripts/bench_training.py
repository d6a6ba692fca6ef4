"""Time the training CLI end to end: wall time, CPU use, compile cost, memory, scaling.

Runs ``scripts/train_mamba_models.py`` once per ``--parallel`` value on the same
symbols (offline, into a scratch models dir) and reports, per run:

- wall time and per-symbol training time (inside the worker);
- CPU utilisation: user + system CPU seconds of the whole process tree / (wall x cores);
- the compile cost: each symbol's first epoch / its median later epoch (per worker, the
  first symbol compiles; later symbols of the same shape should not);
- the kernel's share of that CPU time (system / (user + system)) and the minor page
  faults: the allocator setting (``ml.state_space.allocator``) is what keeps them low;
- peak RSS summed over the process tree, and of the largest single process (a worker),
  and that process's steady RSS (the median of the half-second samples);
- the share of the workers' time spent inside fits: the symbols' training seconds over
  (workers x wall); the rest is start-up, data loading, saving and the tail.

Prints one JSON line per run plus a table.

Examples:
    python scripts/bench_training.py --symbols TIER_1 --parallel 10
    python scripts/bench_training.py --symbols AAPL,MSFT,KO,XOM --parallel 1,2,4,10 --epochs 3
    MAMBA_MALLOC_RETAIN=0 python scripts/bench_training.py --keep-models /tmp/before

``--keep-models DIR`` keeps each run's models in ``DIR/parallel-N`` (to compare them).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from ml.state_space.execution.pool import local_workers

TRAIN = Path(__file__).resolve().parent / "train_mamba_models.py"


def tree_rss(process: psutil.Process) -> tuple[int, int]:
    """Resident memory of a process and all its descendants, and of the largest one, bytes."""
    sizes = []
    for member in [process, *process.children(recursive=True)]:
        try:
            sizes.append(member.memory_info().rss)
        except psutil.NoSuchProcess:
            continue
    return sum(sizes), max(sizes, default=0)


def children_usage() -> tuple[float, float, int]:
    """User and system CPU seconds and minor page faults of every waited-for descendant."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime, usage.ru_stime, usage.ru_minflt


def compile_ratios(models_dir: Path) -> list[float]:
    """Per trained symbol: first epoch seconds / median of its later epochs."""
    from ml.state_space.registry import ModelRegistry

    registry = ModelRegistry(models_dir)
    ratios = []
    for symbol in registry.symbols():
        seconds = [e["seconds"] for e in registry.load_metrics(symbol)["epochs"]]
        if len(seconds) > 1:
            ratios.append(seconds[0] / statistics.median(seconds[1:]))
    return ratios


def run_once(symbols: str, parallel: int, extra: list[str], keep: Path | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-train-") as scratch:
        models = str(keep / f"parallel-{parallel}") if keep else scratch
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
        started, usage_before = time.perf_counter(), children_usage()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        peak, peak_process, largest_samples = 0, 0, []
        watcher = psutil.Process(process.pid)
        done = threading.Event()

        def sample() -> None:
            nonlocal peak, peak_process
            while not done.wait(0.5):
                try:
                    total, largest = tree_rss(watcher)
                except psutil.NoSuchProcess:
                    return
                peak, peak_process = max(peak, total), max(peak_process, largest)
                largest_samples.append(largest)

        thread = threading.Thread(target=sample, daemon=True)
        thread.start()
        _, stderr = process.communicate()
        done.set()
        thread.join()
        wall = time.perf_counter() - started
        user, system, faults = (a - b for a, b in zip(children_usage(), usage_before, strict=True))
        cpu = user + system
        [run_file] = Path(models, "runs").glob("*.json")
        run = json.loads(run_file.read_text())
        ratios = compile_ratios(Path(models))
    trained = [o for o in run["outcomes"] if o["status"] == "trained"]
    seconds = sorted(o["seconds"] for o in trained)
    cores = os.cpu_count() or 1
    workers = min(local_workers(parallel), len(trained)) or 1
    return {
        "parallel": parallel,
        "exit_code": process.returncode,
        "symbols_trained": len(trained),
        "symbols_skipped": len(run["outcomes"]) - len(trained),
        "wall_s": round(wall, 1),
        "per_symbol_median_s": round(seconds[len(seconds) // 2], 1) if seconds else None,
        "per_symbol_max_s": round(seconds[-1], 1) if seconds else None,
        "cpu_utilisation": round(cpu / (wall * cores), 3),
        "user_s": round(user, 1),
        "system_s": round(system, 1),
        "kernel_share": round(system / cpu, 3),
        "minor_faults_m": round(faults / 1e6, 2),
        "fit_time_share": round(sum(seconds) / (wall * workers), 3),
        "first_epoch_ratio_max": round(max(ratios), 2) if ratios else None,
        "first_epoch_ratio_median": round(statistics.median(ratios), 2) if ratios else None,
        "first_epoch_ratios": [round(r, 2) for r in ratios],
        "peak_rss_mb": round(peak / 2**20),
        "peak_process_rss_mb": round(peak_process / 2**20),
        "steady_process_rss_mb": round(statistics.median(largest_samples or [0]) / 2**20),
        "stderr_tail": stderr.decode()[-500:] if process.returncode else "",
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--symbols", default="TIER_1")
    parser.add_argument("--parallel", default="10", help="comma list, e.g. 1,2,4,10")
    parser.add_argument("--keep-models", type=Path, help="keep each run's models here")
    args, extra = parser.parse_known_args()
    results = []
    for parallel in (int(p) for p in args.parallel.split(",")):
        result = run_once(args.symbols, parallel, extra, args.keep_models)
        print(
            json.dumps({"bench": "training", "symbols": args.symbols, "args": extra, **result}),
            flush=True,
        )
        results.append(result)
    base = results[0]["wall_s"]
    print(
        f"\n{'parallel':>8} {'wall s':>8} {'speed-up':>8} {'per-symbol s':>12} {'CPU use':>8} "
        f"{'kernel':>6} {'1st/later epoch':>15} {'peak RSS MB':>11} {'largest proc MB':>15}"
    )
    for r in results:
        print(
            f"{r['parallel']:>8} {r['wall_s']:>8} {base / r['wall_s']:>8.2f} "
            f"{r['per_symbol_median_s']!s:>12} {r['cpu_utilisation']:>8.0%} "
            f"{r['kernel_share']:>6.1%} "
            f"{r['first_epoch_ratio_median']!s:>15} {r['peak_rss_mb']:>11} "
            f"{r['peak_process_rss_mb']:>15}"
        )
    return 0 if all(r["exit_code"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
