"""Time one epoch's resume state, as training saves it, against Keras's own callbacks.

Interleaved in one process on the default Mamba network (trained one step, so the
optimiser's moments exist): ``FitState``'s epoch-end save (``latest.npz``, plus
``best.npz`` as on an improving epoch) against what ``BackupAndRestore`` and
``ModelCheckpoint(save_weights_only=True)`` wrote per improving epoch before it (two HDF5
weight files). Prints one JSON line: medians and p10 in ms, and their ratio.

    .venv/bin/python scripts/bench_checkpoint.py --rounds 40
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from ml.state_space.engine.loop import FitState
from ml.state_space.models.heads import compile_model
from ml.state_space.models.mamba.model import MambaConfig, build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--features", type=int, default=28)
    args = parser.parse_args()

    config = MambaConfig()
    network = compile_model(build_model(config, args.features, output_steps=10), config)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, config.seq_len, args.features)).astype("float32")
    network.train_on_batch(x, rng.normal(size=(64, 10, config.n_horizons)).astype("float32"))
    with tempfile.TemporaryDirectory() as scratch:
        state = FitState(Path(scratch) / "state")
        state.set_model(network)
        keras_dir = Path(scratch) / "keras"
        keras_dir.mkdir()

        def ours() -> None:
            state.on_epoch_end(0, {"val_loss": -float(time.perf_counter())})  # improves

        def keras_callbacks() -> None:
            network.save_weights(keras_dir / "latest.weights.h5", overwrite=True)
            network.save_weights(keras_dir / "best.weights.h5", overwrite=True)

        calls = {"fit_state": ours, "keras_h5": keras_callbacks}
        for call in calls.values():
            call()  # warm-up
        times: dict[str, list[float]] = {name: [] for name in calls}
        for round_ in range(args.rounds):
            for name in list(calls)[:: 1 if round_ % 2 else -1]:
                started = time.perf_counter()
                calls[name]()
                times[name].append(1e3 * (time.perf_counter() - started))
    stats = {
        name: {"median": round(float(np.median(t)), 2), "p10": round(float(np.quantile(t, 0.1)), 2)}
        for name, t in times.items()
    }
    ratio = stats["keras_h5"]["median"] / stats["fit_state"]["median"]
    print(json.dumps({"epoch_state_save_ms": stats, "keras_over_fit_state": round(ratio, 1)}))


if __name__ == "__main__":
    main()
