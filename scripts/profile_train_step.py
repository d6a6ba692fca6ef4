"""Profile the Mamba training step: XLA:CPU kernel time per step, by kind of kernel.

Runs ``--steps`` XLA-compiled ``train_on_batch`` calls of the default network (the
``bench_model.py`` batch: 64 random windows of 60 steps x 28 features) under the
TensorFlow profiler and sums the time of the kernels on TensorFlow's worker threads.
Kernels are grouped by their XLA name with the numeric suffix removed (``dot`` and
``MatMul`` together as matmuls); since the two threads run kernels side by side, the
kernel total can exceed the step's wall time. Prints one JSON line: the wall time per
step, the kernel total, the kinds and the slowest kernels (ms per step).

    .venv/bin/python scripts/profile_train_step.py --steps 10
    XLA_FLAGS=--xla_dump_to=/tmp/hlo .venv/bin/python scripts/profile_train_step.py  # names -> ops
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from tensorflow.tsl.profiler.protobuf import xplane_pb2

from ml.state_space.models.heads import compile_model
from ml.state_space.models.mamba.model import MambaConfig, build_model

WORKER_THREAD = "Eigen"  # TensorFlow's intra-op pool, where XLA:CPU runs its kernels
WRAPPERS = {"ThunkExecutor::Execute", "SlinkyThreadPool::Await"}  # spans around kernels


def kernel_times(trace_dir: Path) -> collections.Counter:
    """Total duration (ms) of each kernel name on the worker threads of a profiler trace."""
    totals: collections.Counter = collections.Counter()
    for path in trace_dir.rglob("*.xplane.pb"):
        space = xplane_pb2.XSpace()
        space.ParseFromString(path.read_bytes())
        for plane in space.planes:
            for line in plane.lines:
                if WORKER_THREAD not in line.name:
                    continue
                for event in line.events:
                    name = plane.event_metadata[event.metadata_id].name
                    if name not in WRAPPERS and not name.startswith("end: "):
                        totals[name] += event.duration_ps / 1e9
    return totals


def kind_of(kernel: str) -> str:
    """``dot.17`` -> ``matmul``, ``wrapped_reduce-window.44`` -> ``wrapped_reduce-window``."""
    kind = re.sub(r"[._]\d+$", "", kernel)
    return "matmul" if kind in ("dot", "MatMul", "MatMul_1") else kind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="profiled training steps")
    parser.add_argument("--output-steps", type=int, default=1, help="supervised steps K")
    parser.add_argument("--features", type=int, default=28)
    parser.add_argument("--top", type=int, default=15, help="slowest kernels listed")
    args = parser.parse_args()

    config = MambaConfig()
    network = compile_model(build_model(config, args.features, args.output_steps), config)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, config.seq_len, args.features)).astype("float32")
    steps = () if args.output_steps == 1 else (args.output_steps,)  # as in bench_model.py
    y = (0.02 * rng.normal(size=(64, *steps, config.n_horizons))).astype("float32")
    for _ in range(5):  # compile and warm up
        network.train_on_batch(x, y)

    with tempfile.TemporaryDirectory() as trace_dir:
        started = time.perf_counter()
        tf.profiler.experimental.start(trace_dir)
        for _ in range(args.steps):
            network.train_on_batch(x, y)
        tf.profiler.experimental.stop()
        wall_ms = (time.perf_counter() - started) * 1e3 / args.steps
        per_step = {k: v / args.steps for k, v in kernel_times(Path(trace_dir)).items()}

    kinds: collections.Counter = collections.Counter()
    for kernel, ms in per_step.items():
        kinds[kind_of(kernel)] += ms
    report = {
        "wall_ms_per_step_profiled": round(wall_ms, 1),
        "kernel_ms_per_step": round(sum(per_step.values()), 1),
        "distinct_kernels": len(per_step),
        "by_kind_ms": {k: round(v, 2) for k, v in kinds.most_common()},
        "slowest_ms": {
            k: round(v, 3) for k, v in collections.Counter(per_step).most_common(args.top)
        },
        "output_steps": args.output_steps,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
