"""Time the Mamba block's in-projection matmul + SiLU in float32 and in bfloat16, interleaved.

The training-throughput issue asks whether Keras's ``mixed_bfloat16`` policy pays on
CPUs with bf16 units (oneDNN uses AMX for bf16 matmuls on Intel Xeons). This measures
the largest matmul of the default network, one block's in-projection of a training batch,
(64 x 60, d_model=64) @ (64, 292), with and without XLA, and prints one JSON line of
medians (ms) per dtype, the CPU model and its bf16/AMX flags.

    .venv/bin/python scripts/bench_bf16_matmul.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf


def median_ms(dtype: tf.DType, jit: bool, calls: int) -> float:
    """Median wall time (ms) of the compiled projection in ``dtype``, after one warm-up call."""
    rng = np.random.default_rng(0)
    a = tf.cast(rng.normal(size=(64 * 60, 64)).astype(np.float32), dtype)
    b = tf.cast(rng.normal(size=(64, 292)).astype(np.float32), dtype)

    def project(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(tf.cast(tf.nn.silu(tf.matmul(a, b)), tf.float32))

    function = tf.function(project, jit_compile=jit)
    function(a, b)  # compile
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        function(a, b).numpy()
        times.append(time.perf_counter() - started)
    return round(float(np.median(times)) * 1e3, 3)


def cpu_description() -> dict[str, object]:
    """The CPU model and its bf16/AMX flags, from /proc/cpuinfo (empty where it is absent)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            text = info.read()
    except OSError:
        return {"model": None, "flags": []}
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in text.splitlines()
            if line.startswith("model name")
        ),
        None,
    )
    words = set(text.split())
    flags = sorted(w for w in words if w.startswith("amx") or w == "avx512_bf16")
    return {"model": model, "flags": flags}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--calls", type=int, default=50, help="timed calls per measurement")
    args = parser.parse_args()
    report: dict[str, object] = {"cpu": cpu_description()}
    for jit in (True, False):
        for dtype in (tf.float32, tf.bfloat16):
            report[f"{dtype.name}_xla={jit}"] = []
        for _ in range(args.rounds):
            for dtype in (tf.float32, tf.bfloat16):
                report[f"{dtype.name}_xla={jit}"].append(median_ms(dtype, jit, args.calls))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
