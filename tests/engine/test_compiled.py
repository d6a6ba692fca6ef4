"""Reusing one compiled training network per shape gives the same fit as a fresh one."""

from __future__ import annotations

import numpy as np
import pytest

from ml.state_space.data.sources import load_bundled
from ml.state_space.engine.compiled import INFERENCE, NETWORKS
from ml.state_space.models.mamba.forecaster import MambaForecaster
from tests.conftest import tiny_training_config


@pytest.fixture(scope="module")
def histories():
    return {s: load_bundled(s).loc[:"2015-12-31"] for s in ("AAPL", "KO")}


def _weights(forecaster):
    return [np.asarray(w) for w in forecaster.network.get_weights()]


def test_a_reused_network_trains_to_exactly_the_weights_of_a_fresh_one(histories):
    config = tiny_training_config(epochs=2)
    NETWORKS.clear()
    fresh = MambaForecaster(training_config=config).fit(histories["AAPL"], symbol="AAPL")
    trained = _weights(fresh)
    assert len(NETWORKS) == 1
    MambaForecaster(training_config=config).fit(histories["KO"], symbol="KO")
    reused = MambaForecaster(training_config=config).fit(histories["AAPL"], symbol="AAPL")
    assert len(NETWORKS) == 1  # one architecture, one compiled network
    for first, again, kept in zip(trained, _weights(reused), _weights(fresh), strict=True):
        np.testing.assert_array_equal(first, again)
        np.testing.assert_array_equal(first, kept)  # later fits left this forecaster alone
    assert fresh.history[-1]["val_loss"] == reused.history[-1]["val_loss"]
    origins = histories["AAPL"].index[-5:]
    np.testing.assert_array_equal(
        fresh.predict_quantiles(histories["AAPL"], origins),
        reused.predict_quantiles(histories["AAPL"], origins),
    )


def test_the_cache_keeps_only_its_capacity_of_architectures(histories):
    NETWORKS.clear()
    for d_model in (8, 16, 24):
        config = tiny_training_config(epochs=1)
        config = config.__class__.from_dict(
            {**config.to_dict(), "model": {**config.model.to_dict(), "d_model": d_model}}
        )
        MambaForecaster(training_config=config).fit(histories["KO"], symbol="KO")
    assert len(NETWORKS) == NETWORKS.capacity


def test_a_fit_after_a_resumed_fit_still_runs_every_epoch(histories):
    NETWORKS.clear()
    config = tiny_training_config(epochs=2)
    MambaForecaster(training_config=config).fit(histories["KO"], symbol="KO")
    (trainer,) = NETWORKS._networks.values()
    trainer._initial_epoch = 2  # what keras.callbacks.BackupAndRestore leaves after resuming
    again = MambaForecaster(training_config=config).fit(histories["KO"], symbol="KO")
    assert [epoch["epoch"] for epoch in again.history] == [1, 2]


def test_models_of_one_architecture_share_one_inference_function(histories):
    config = tiny_training_config(epochs=1)
    before = len(INFERENCE)
    models = {
        s: MambaForecaster(training_config=config).fit(prices, symbol=s)
        for s, prices in histories.items()
    }
    assert len(INFERENCE) - before <= 1  # at most one new architecture, however many models
    assert models["AAPL"]._infer is models["KO"]._infer
    rng = np.random.default_rng(0)
    windows = rng.normal(size=(3, config.model.seq_len, len(models["KO"].card.features.names)))
    for model in models.values():
        direct = model.network(windows.astype("float32"), training=False)
        np.testing.assert_allclose(model.infer_scaled(windows), direct, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            model.infer_scaled(windows[:1]), direct[:1], rtol=1e-5, atol=1e-6
        )


def test_seeding_draws_what_keras_seeding_draws_and_keeps_compiled_functions():
    import keras
    import tensorflow as tf

    from ml.state_space.engine.compiled import set_random_seed
    from ml.state_space.models.mamba.model import MambaConfig, build_model

    def draws(seed_with):
        seed_with(11)
        network = build_model(MambaConfig(d_model=16, n_layers=1, seq_len=20), 5)
        noise = keras.random.normal((4,)), keras.random.dropout(keras.ops.ones((8,)), 0.5)
        return [*network.get_weights(), *(np.asarray(n) for n in noise), np.random.rand(3)]

    ours, keras_own = draws(set_random_seed), draws(keras.utils.set_random_seed)
    for mine, theirs in zip(ours, keras_own, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    tf.random.set_seed(None)
    set_random_seed(3)
    assert tf.compat.v1.get_seed(None) == (None, None)  # TensorFlow's seed (and caches) untouched
