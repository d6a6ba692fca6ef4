"""Time the training loop against Keras's ``fit`` on the same batches, interleaved.

One process set up as a training worker of the main command (one TensorFlow thread,
and one core: ``--cpus 1`` pins it, as two workers share two cores), the default Mamba
network supervised at ten steps, ``TrainingBatches`` of synthetic windows augmented as
in training: each round trains ``--epochs`` epochs through ``engine.loop.run_epochs``
and through ``keras.Model.fit`` on the same batches wrapped as a ``PyDataset``, in
alternating order. Prints one JSON line: per-epoch wall time (median and p10, ms), CPU
seconds per wall second of each, and their ratios.

    .venv/bin/python scripts/bench_fit_loop.py --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import tensorflow as tf

from ml.state_space.engine.loop import TrainingBatches, run_epochs
from ml.state_space.features.augment import DataAugmentor
from ml.state_space.models.heads import compile_model
from ml.state_space.models.mamba.model import MambaConfig, build_model


class KerasBatches(keras.utils.PyDataset):
    """``TrainingBatches`` as Keras's ``fit`` takes them."""

    def __init__(self, batches: TrainingBatches) -> None:
        super().__init__()
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return self.batches[index]

    def on_epoch_end(self) -> None:
        self.batches.on_epoch_end()


def _timed(train: Callable[[], None]) -> tuple[float, float]:
    """Wall seconds and process CPU seconds of ``train()``."""
    cpu, wall = time.process_time(), time.perf_counter()
    train()
    return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timed fit")
    parser.add_argument("--windows", type=int, default=8000, help="training windows (stride 1)")
    parser.add_argument("--features", type=int, default=28)
    parser.add_argument("--threads", type=int, default=1, help="TensorFlow threads, as a worker")
    parser.add_argument("--cpus", type=int, default=1, help="cores to run on (0: all)")
    args = parser.parse_args()
    if args.cpus:
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[: args.cpus])
    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)

    config, steps = MambaConfig(), 10
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.windows, config.seq_len, args.features)).astype("float32")
    y = (0.02 * rng.normal(size=(args.windows, config.n_horizons))).astype("float32")
    network = compile_model(build_model(config, args.features, output_steps=steps), config)
    batches = TrainingBatches([(x, y)], 64, DataAugmentor(seed=0), seed=0, supervised_steps=steps)
    loops = {
        "run_epochs": lambda: run_epochs(network, batches, args.epochs, []),
        "keras_fit": lambda: network.fit(
            KerasBatches(batches), shuffle=False, epochs=args.epochs, verbose=0
        ),
    }
    for train in loops.values():  # compile both paths
        train()
    wall: dict[str, list[float]] = {name: [] for name in loops}
    cpu: dict[str, float] = dict.fromkeys(loops, 0.0)
    names = list(loops)
    for round_ in range(args.rounds):
        for name in names[round_ % 2 :] + names[: round_ % 2]:
            seconds, cpu_seconds = _timed(loops[name])
            wall[name].append(seconds / args.epochs)
            cpu[name] += cpu_seconds
    epoch_ms = {
        name: {
            "median": round(1e3 * float(np.median(times)), 1),
            "p10": round(1e3 * float(np.percentile(times, 10)), 1),
        }
        for name, times in wall.items()
    }
    busy = {name: round(cpu[name] / (sum(wall[name]) * args.epochs), 3) for name in loops}
    print(
        json.dumps(
            {
                "epoch_ms": epoch_ms,
                "epoch_ratio_run_epochs_over_fit": round(
                    epoch_ms["run_epochs"]["median"] / epoch_ms["keras_fit"]["median"], 3
                ),
                "cpu_per_wall": busy,
                "batches_per_epoch": len(batches),
                "epochs": args.epochs,
                "rounds": args.rounds,
                "threads": args.threads,
                "cpus": len(os.sched_getaffinity(0)),
            }
        )
    )


if __name__ == "__main__":
    main()
