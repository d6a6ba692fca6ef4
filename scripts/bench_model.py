"""Time the Mamba forecaster against its recurrent peers, interleaved in one process.

Prints one JSON line: per-model training-step and single-window inference times
(median and p10, ms) and the mamba/lstm ratios. The LSTM is the product's LSTM peer
(``models.lstm``: 2 x LSTM(64)), the MinGRU its parallel-scan peer (``models.mingru``:
2 x MinGRU(64)); all share the input shape, the quantile head, the loss and the
optimizer; the LSTM is compiled with Keras' defaults (``jit_compile="auto"``, which is
off on CPU-only machines), the others with XLA. ``--output-steps 10`` times the networks as training
runs them (supervised at the last 10 steps of each window); the default, 1, is the served
network's shape. ``--features 41 --window-norm-rows 51 --output-steps 10`` is the universe
network's shape (OHLCV inputs, each window standardised on its own); the report's
``train_windows_per_s_per_core`` is its training throughput.

    .venv/bin/python scripts/bench_model.py --steps 60 [--output-steps 10]

Under another Keras backend (``KERAS_BACKEND=jax``, with ``jax[cpu]`` installed) both
networks' training steps run on that backend (the Mamba one jit-compiled by it) and the
inference timing, written for TensorFlow, is left out.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from ml.state_space.models.heads import compile_model
from ml.state_space.models.lstm import build_lstm
from ml.state_space.models.mamba.model import MambaConfig, build_model
from ml.state_space.models.mingru import build_mingru


def _stats(times: list[float]) -> dict[str, float]:
    ms = np.asarray(times) * 1e3
    return {"median": round(float(np.median(ms)), 2), "p10": round(float(np.percentile(ms, 10)), 2)}


def _interleaved(calls: dict, steps: int) -> dict[str, list[float]]:
    """Round-robin the callables (order rotating each round); per-call wall times."""
    times: dict[str, list[float]] = {name: [] for name in calls}
    names = list(calls)
    for step in range(steps):
        for name in names[step % 2 :] + names[: step % 2]:
            start = time.perf_counter()
            calls[name]()
            times[name].append(time.perf_counter() - start)
    return times


def _inference(models: dict, window: np.ndarray, args: argparse.Namespace) -> dict:
    """Single-window inference times through ``tf.function`` (XLA for the Mamba network)."""
    window = tf.constant(window)
    infer = {
        "mamba": tf.function(lambda w: models["mamba"](w, training=False), jit_compile=True),
        "lstm": tf.function(lambda w: models["lstm"](w, training=False)),
        "mingru": tf.function(lambda w: models["mingru"](w, training=False), jit_compile=True),
    }
    infer_calls = {name: (lambda f=f: f(window).numpy()) for name, f in infer.items()}
    _interleaved(infer_calls, args.warmup)
    inference = {k: _stats(v) for k, v in _interleaved(infer_calls, 4 * args.steps).items()}
    return {
        "inference_ms": inference,
        "inference_ratio_mamba_over_lstm": round(
            inference["mamba"]["median"] / inference["lstm"]["median"], 3
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="timed rounds per measurement")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--features", type=int, default=28)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--output-steps", type=int, default=1, help="supervised steps K")
    parser.add_argument(
        "--window-norm-rows", type=int, default=0, help="MambaConfig.window_norm_rows (0: off)"
    )
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    config = MambaConfig(window_norm_rows=args.window_norm_rows)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch, config.seq_len, args.features)).astype("float32")
    steps = () if args.output_steps == 1 else (args.output_steps,)
    y = (0.02 * rng.normal(size=(args.batch, *steps, config.n_horizons))).astype("float32")
    models = {
        "mamba": compile_model(build_model(config, args.features, args.output_steps), config),
        "lstm": compile_model(build_lstm(config, args.features, args.output_steps), config, "auto"),
        "mingru": compile_model(build_mingru(config, args.features, args.output_steps), config),
    }
    train_calls = {name: (lambda m=m: m.train_on_batch(x, y)) for name, m in models.items()}
    _interleaved(train_calls, args.warmup)
    train = {k: _stats(v) for k, v in _interleaved(train_calls, args.steps).items()}
    report = {
        "backend": keras.backend.backend(),
        "train_step_ms": train,
        "train_ratio_mamba_over_lstm": {
            k: round(train["mamba"][k] / train["lstm"][k], 3) for k in ("median", "p10")
        },
        "train_ratio_mamba_over_mingru": {
            k: round(train["mamba"][k] / train["mingru"][k], 3) for k in ("median", "p10")
        },
        "train_windows_per_s_per_core": {
            name: round(args.batch / (t["median"] / 1e3) / (os.cpu_count() or 1), 1)
            for name, t in train.items()
        },
        **(_inference(models, x[:1], args) if keras.backend.backend() == "tensorflow" else {}),
        "params": {name: m.count_params() for name, m in models.items()},
        "batch": args.batch,
        "features": args.features,
        "steps": args.steps,
        "output_steps": args.output_steps,
        "config": config.to_dict(),
        "threads": os.cpu_count(),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
