"""Time the Mamba forecaster against a 2-layer LSTM(64) baseline, interleaved in one process.

Prints one JSON line: per-model training-step and single-window inference times
(median and p10, ms) and the mamba/lstm ratios. Both models share the input shape,
the quantile head, the loss and the optimizer; the LSTM is compiled with Keras'
defaults (``jit_compile="auto"``, which is off on CPU-only machines).

    .venv/bin/python scripts/bench_model.py --steps 60
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

from ml.state_space.models.heads import compile_model, quantile_head
from ml.state_space.models.mamba.model import MambaConfig, build_model


def lstm_baseline(config: MambaConfig, n_features: int) -> keras.Model:
    """2-layer LSTM(64) with the same input, head, loss and optimizer as the Mamba model."""
    inputs = keras.Input((config.seq_len, n_features))  # (b, L, F)
    h = keras.layers.LSTM(64, return_sequences=True)(inputs)  # (b, L, 64)
    h = keras.layers.LSTM(64)(h)  # (b, 64)
    model = keras.Model(inputs, quantile_head(h, config), name="lstm_baseline")
    return compile_model(model, config, jit_compile="auto")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="timed rounds per measurement")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--features", type=int, default=28)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()

    keras.utils.set_random_seed(0)
    config = MambaConfig()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch, config.seq_len, args.features)).astype("float32")
    y = (0.02 * rng.normal(size=(args.batch, config.n_horizons))).astype("float32")
    window = tf.constant(x[:1])
    models = {
        "mamba": compile_model(build_model(config, args.features), config),
        "lstm": lstm_baseline(config, args.features),
    }
    infer = {
        "mamba": tf.function(lambda w: models["mamba"](w, training=False), jit_compile=True),
        "lstm": tf.function(lambda w: models["lstm"](w, training=False)),
    }
    train_calls = {name: (lambda m=m: m.train_on_batch(x, y)) for name, m in models.items()}
    infer_calls = {name: (lambda f=f: f(window).numpy()) for name, f in infer.items()}
    _interleaved(train_calls, args.warmup)
    _interleaved(infer_calls, args.warmup)
    train = {k: _stats(v) for k, v in _interleaved(train_calls, args.steps).items()}
    inference = {k: _stats(v) for k, v in _interleaved(infer_calls, 4 * args.steps).items()}
    report = {
        "train_step_ms": train,
        "train_ratio_mamba_over_lstm": {
            k: round(train["mamba"][k] / train["lstm"][k], 3) for k in ("median", "p10")
        },
        "inference_ms": inference,
        "inference_ratio_mamba_over_lstm": round(
            inference["mamba"]["median"] / inference["lstm"]["median"], 3
        ),
        "params": {name: m.count_params() for name, m in models.items()},
        "batch": args.batch,
        "features": args.features,
        "steps": args.steps,
        "config": config.to_dict(),
        "threads": os.cpu_count(),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
