"""The per-epoch log of the training loop."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

from ml.state_space.training.loop import EpochLog


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
    from ml.state_space.models.heads import compile_model
    from ml.state_space.models.mamba.model import MambaConfig, build_model
    from ml.state_space.training.loop import ValidationLoss

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
    from ml.state_space.features.windows import WindowSet
    from ml.state_space.training.loop import refit_network
    from tests.conftest import tiny_training_config

    model = keras.Sequential([keras.Input((4, 2)), keras.layers.Flatten(), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    rng = np.random.default_rng(0)
    windows = WindowSet(
        rng.normal(size=(256, 4, 2)).astype("float32"),
        rng.normal(size=(256, 2)).astype("float32"),
        None,
        None,
    )
    config = tiny_training_config(augment=False, supervised_steps=1)  # a one-step network
    refit_network(model, windows, np.ones(2, "float32"), config, [0.01, 0.004, 0.002], "TEST")
    assert float(model.optimizer.learning_rate) == pytest.approx(0.002)
    assert int(model.optimizer.iterations) == 3 * (256 // config.batch_size)
