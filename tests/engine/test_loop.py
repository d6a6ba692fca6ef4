"""The per-epoch log of the training loop."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from ml.state_space.engine.loop import EpochLog


def test_each_epoch_logs_the_learning_rate_it_ran_with(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    cut_every_epoch = keras.callbacks.ReduceLROnPlateau(
        monitor="loss", factor=0.5, patience=0, min_delta=1e9, min_lr=0.0
    )
    seen = []
    log = EpochLog("TEST", tmp_path / "epochs.json", lambda symbol, record: seen.append(symbol))
    x = np.random.default_rng(0).normal(size=(32, 3)).astype("float32")
    model.fit(x, x[:, :1], epochs=3, verbose=0, callbacks=[cut_every_epoch, log])

    rates = [epoch["learning_rate"] for epoch in log.epochs]
    # the first epoch sets the plateau's reference; the cuts come at the end of epochs 2, 3
    assert rates == pytest.approx([0.1, 0.1, 0.05])
    assert float(model.optimizer.learning_rate) == pytest.approx(0.025)
    assert [e["epoch"] for e in json.loads((tmp_path / "epochs.json").read_text())] == [1, 2, 3]
    assert seen == ["TEST"] * 3


def test_validation_loss_on_padded_batches_equals_keras_evaluate():
    from ml.state_space.engine.loop import ValidationLoss
    from ml.state_space.models.heads import compile_model
    from ml.state_space.models.mamba.model import MambaConfig, build_model

    config = MambaConfig(
        d_model=16,
        n_layers=1,
        d_state=4,
        head_dim=8,
        seq_len=12,
        horizons=(1, 5),
        chunk_size=4,
        jit_compile=False,
    )
    network = compile_model(build_model(config, 3), config)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(700, 12, 3)).astype("float32")  # one full and one ragged batch
    y = rng.normal(size=(700, 2)).astype("float32")
    callback = ValidationLoss(x, y, batch_size=512)
    callback.set_model(network)
    logs = {}
    callback.on_epoch_end(0, logs)
    expected = network.evaluate(x, y, batch_size=700, verbose=0, return_dict=True)
    assert logs["val_loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert logs["val_median_mae"] == pytest.approx(expected["median_mae"], rel=1e-5)


def test_a_refit_replays_the_learning_rates_it_is_given():
    from ml.state_space.engine.loop import refit_network
    from tests.conftest import tiny_training_config

    model = keras.Sequential([keras.Input((4, 2)), keras.layers.Flatten(), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    rng = np.random.default_rng(0)
    segment = (
        rng.normal(size=(256, 4, 2)).astype("float32"),
        rng.normal(size=(256, 2)).astype("float32"),
    )
    config = tiny_training_config(augment=False, supervised_steps=1)  # a one-step network
    refit_network(model, [segment], config, [0.01, 0.004, 0.002], "TEST")
    assert float(model.optimizer.learning_rate) == pytest.approx(0.002)
    assert int(model.optimizer.iterations) == 3 * (256 // config.batch_size)


@pytest.mark.parametrize("supervised_steps", [1, 3])
def test_run_epochs_trains_exactly_as_keras_fit(supervised_steps):
    """Same weights bit for bit (XLA step, dropout, augmentation, shuffling), same
    callback calls (a plateau cut on the training loss) and the same epoch losses."""
    from ml.state_space.engine.compiled import set_random_seed
    from ml.state_space.engine.loop import TrainingBatches, run_epochs
    from ml.state_space.features.augment import DataAugmentor
    from ml.state_space.models.heads import compile_model
    from ml.state_space.models.mamba.model import MambaConfig, build_model
    from scripts.bench_fit_loop import KerasBatches

    config = MambaConfig(
        d_model=16, n_layers=2, d_state=4, head_dim=8, seq_len=12, horizons=(1, 5), chunk_size=4
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(150, 12, 3)).astype("float32")
    y = (0.02 * rng.normal(size=(150, 2))).astype("float32")

    def train(run) -> tuple[keras.Model, list[float]]:
        set_random_seed(3)
        network = compile_model(build_model(config, 3, supervised_steps), config)
        batches = TrainingBatches([(x, y)], 8, DataAugmentor(seed=3), 3, supervised_steps)
        plateau = keras.callbacks.ReduceLROnPlateau(
            monitor="loss", factor=0.5, patience=0, min_delta=1e9, min_lr=0.0
        )
        losses = run(network, batches, [plateau])
        return network, losses

    fitted, fit_losses = train(
        lambda network, batches, callbacks: network.fit(
            KerasBatches(batches), shuffle=False, epochs=3, callbacks=callbacks, verbose=0
        ).history["loss"]
    )
    looped, loop_losses = train(
        lambda network, batches, callbacks: [
            epoch["loss"] for epoch in run_epochs(network, batches, 3, callbacks)
        ]
    )
    for ours, theirs in zip(looped.variables, fitted.variables, strict=True):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs))
    assert loop_losses == pytest.approx(fit_losses, rel=1e-6)
    rates = [float(n.optimizer.learning_rate) for n in (looped, fitted)]
    assert rates == pytest.approx([0.25e-3, 0.25e-3])  # cut at the end of epochs 2 and 3
