"""Training networks supervised at the last K steps of each window (``supervised_steps``)."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from ml.state_space.engine.compiled import copy_variables
from ml.state_space.engine.loop import TrainingBatches, ValidationLoss, at_steps
from ml.state_space.features.engineer import TimeSeriesFeatureEngineer
from ml.state_space.models.config import TrainingConfig
from ml.state_space.models.heads import compile_model
from ml.state_space.models.losses import MedianAbsoluteError, QuantileLoss
from ml.state_space.models.lstm import build_lstm
from ml.state_space.models.mamba.model import MambaConfig, build_model

CONFIG = MambaConfig(
    d_model=16, n_layers=2, d_state=4, head_dim=8, seq_len=12, chunk_size=5, dropout=0.0
)
N_FEATURES = 3
STEPS = 5


def windows(n: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, CONFIG.seq_len, N_FEATURES)).astype("f4")


@pytest.mark.parametrize("build", [build_model, build_lstm], ids=["mamba", "lstm"])
def test_the_training_network_shares_the_weights_and_ends_with_the_served_forecast(build):
    keras.utils.set_random_seed(3)
    served, trained = build(CONFIG, N_FEATURES), build(CONFIG, N_FEATURES, STEPS)
    copy_variables(served, trained)  # raises if the two differ in their variables
    x = windows()
    out = np.asarray(trained(x))
    assert out.shape == (len(x), STEPS, CONFIG.n_horizons, CONFIG.n_quantiles)
    np.testing.assert_allclose(out[:, -1], np.asarray(served(x)), atol=1e-5)
    assert (np.diff(out, axis=-1) >= 0).all()  # quantiles sorted at every step


@pytest.mark.parametrize("build", [build_model, build_lstm], ids=["mamba", "lstm"])
def test_each_supervised_step_sees_only_its_past(build):
    keras.utils.set_random_seed(4)
    network = build(CONFIG, N_FEATURES, STEPS)
    x = windows()
    changed = x.copy()
    changed[:, -2] += 1.0  # the second-to-last row: only the last two outputs may move
    moved = np.abs(np.asarray(network(changed)) - np.asarray(network(x))).max(axis=(0, 2, 3))
    assert moved[:-2].max() < 1e-5  # float rounding of the matmul-based scan only
    assert moved[-2:].min() > 1e-3


def test_losses_average_the_steps():
    rng = np.random.default_rng(1)
    y_true = rng.normal(size=(4, STEPS, 2)).astype("f4")
    y_pred = np.sort(rng.normal(size=(4, STEPS, 2, 3)), axis=-1).astype("f4")
    loss = QuantileLoss((0.1, 0.5, 0.9), point_loss_weight=0.5, reduction=None)
    per_step = np.stack([loss(y_true[:, k], y_pred[:, k]) for k in range(STEPS)], axis=1)
    np.testing.assert_allclose(loss(y_true, y_pred), per_step.mean(axis=1), rtol=1e-6)
    metric = MedianAbsoluteError(median_index=1)
    metric.update_state(y_true, y_pred)
    expected = np.abs(y_true - y_pred[..., 1]).mean()
    assert float(metric.result()) == pytest.approx(expected, rel=1e-6)


def test_an_epoch_targets_every_origin_once_through_every_kth_window():
    n, steps = 103, 4
    x = np.arange(n, dtype="f4")[:, None, None] * np.ones((1, 2, 1), "f4")  # window i: value i
    y = np.arange(n, dtype="f4")[:, None] * np.ones((1, 3), "f4")  # origin i: target i
    batches = TrainingBatches([(x, y)], 5, augmentor=None, seed=0, supervised_steps=steps)
    assert len(batches) == ((n - steps + 1) // steps) // 5
    phases = set()
    for _ in range(6):
        seen = [batches[i] for i in range(len(batches))]
        ends = np.concatenate([xb[:, 0, 0] for xb, _ in seen]).astype(int)
        for xb, yb in seen:
            assert yb.shape == (5, steps, 3)
            # the targets of a window are its last K origins, ending at the window itself
            expected = xb[:, 0, 0][:, None] + np.arange(1 - steps, 1)
            np.testing.assert_array_equal(yb[..., 0], expected)
        assert len(set(ends)) == len(ends)  # no window twice
        assert len({e % steps for e in ends}) == 1  # every K-th window, one phase
        phases.add(int(ends[0] % steps))
        batches.on_epoch_end()
    assert len(phases) > 1  # the phase is redrawn each epoch


def test_one_supervised_step_batches_every_window():
    n = 40
    x = np.arange(n, dtype="f4")[:, None, None]
    y = np.arange(n, dtype="f4")[:, None]
    batches = TrainingBatches([(x, y)], batch_size=8, augmentor=None, seed=0)
    seen = [batches[i] for i in range(len(batches))]
    assert len(seen) == 5
    values = np.concatenate([xb[:, 0, 0] for xb, _ in seen])
    assert sorted(values) == list(range(n))
    assert all(np.array_equal(xb[:, 0, 0], yb[:, 0]) for xb, yb in seen)


def test_validation_scores_the_last_step_of_a_several_step_network():
    keras.utils.set_random_seed(5)
    trained = compile_model(build_model(CONFIG, N_FEATURES, STEPS), CONFIG)
    served = compile_model(build_model(CONFIG, N_FEATURES), CONFIG)
    copy_variables(trained, served)
    x, y = windows(20), np.random.default_rng(2).normal(size=(20, CONFIG.n_horizons))
    scores = []
    for network in (trained, served):
        logs: dict = {}
        callback = ValidationLoss(x, y.astype("f4"), batch_size=16)
        callback.set_model(network)
        callback.on_epoch_end(0, logs)
        scores.append(logs)
    assert scores[0] == pytest.approx(scores[1], rel=1e-5)


def test_validation_at_the_supervised_steps_scores_every_origin_once():
    n, steps = 23, 5
    x = np.arange(n, dtype="f4")[:, None, None] * np.ones((1, 2, 1), "f4")  # window i: value i
    y = np.arange(n, dtype="f4")[:, None] * np.ones((1, 3), "f4")  # origin i: target i
    xs, ys = at_steps(x, y, steps)
    assert xs[:, 0, 0].tolist() == [7, 12, 17, 22]  # the last window and every K-th before
    assert ys.shape == (4, steps, 3)
    np.testing.assert_array_equal(ys[..., 0].ravel(), np.arange(3, n))  # its last K origins
    short = at_steps(x[:4], y[:4], steps)  # fewer windows than steps: each at its last
    assert short[0].shape == (4, 2, 1) and short[1].shape == (4, 3)
    same = at_steps(x, y, 1)
    assert same[0] is x and same[1] is y


def test_a_several_step_network_is_validated_at_its_steps_as_it_is_trained():
    keras.utils.set_random_seed(5)
    trained = compile_model(build_model(CONFIG, N_FEATURES, STEPS), CONFIG)
    x, y = windows(23), np.random.default_rng(2).normal(size=(23, CONFIG.n_horizons)).astype("f4")
    xs, ys = at_steps(x, y, STEPS)
    logs: dict = {}
    callback = ValidationLoss(xs, ys, batch_size=4)
    callback.set_model(trained)
    callback.on_epoch_end(0, logs)
    expected = trained.evaluate(xs, ys, batch_size=len(xs), verbose=0, return_dict=True)
    assert logs["val_loss"] == pytest.approx(expected["loss"], rel=1e-5)
    assert logs["val_median_mae"] == pytest.approx(expected["median_mae"], rel=1e-5)


def test_supervised_steps_are_at_most_a_window_and_count_in_the_history_needed():
    with pytest.raises(ValueError, match="supervised_steps"):
        TrainingConfig(supervised_steps=0)
    short = MambaConfig(seq_len=8)
    assert TrainingConfig(model=short, supervised_steps=10).output_steps == 8
    for steps in (1, 10, 60):
        config = TrainingConfig(supervised_steps=steps, val_fraction=0.5)
        rows = config.min_history(0.0) - TimeSeriesFeatureEngineer.warmup
        train_rows = rows - int(rows * 0.5)
        span = config.generator().span
        assert train_rows - span + 1 in (steps, steps + 1)  # windows: one per supervised step
    with pytest.raises(ValueError, match="output_steps"):
        build_model(CONFIG, N_FEATURES, CONFIG.seq_len + 1)


def test_a_fit_keeps_no_reference_to_its_training_windows(monkeypatch):
    """Once the forecaster is fitted its training windows (~125 MB for a full history)
    must be freed: nothing of a fit may keep them alive in a worker process that runs
    fit after fit (Keras's ``fit`` did, through its data adapter)."""
    import gc
    import weakref

    from ml.state_space.data.sources import load_bundled
    from ml.state_space.engine import loop
    from ml.state_space.models.mamba.forecaster import MambaForecaster
    from tests.conftest import tiny_training_config

    created = []

    class Recorded(TrainingBatches):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            created.append(weakref.ref(self))

    monkeypatch.setattr(loop, "TrainingBatches", Recorded)
    prices = load_bundled("AAPL").iloc[-900:]
    config = tiny_training_config(epochs=1, refit=True, blend=False)  # the network is served
    forecaster = MambaForecaster(training_config=config).fit(prices)
    gc.collect()
    assert len(created) == 2  # the early-stopped fit and the refit
    assert all(reference() is None for reference in created)
    assert forecaster.predict_quantiles(prices, prices.index[-2:]).shape[0] == 2


@pytest.mark.parametrize("build", [build_model, build_lstm], ids=["mamba", "lstm"])
def test_the_head_drops_the_same_features_at_every_step_of_a_window(build):
    config = MambaConfig(**{**CONFIG.to_dict(), "dropout": 0.5})
    head_dropout = build(config, N_FEATURES, output_steps=STEPS).get_layer("head_dropout")
    features = np.ones((4, STEPS, head_dropout.noise_shape[-1]), dtype="float32")
    dropped = keras.ops.convert_to_numpy(head_dropout(features, training=True)) == 0.0
    assert dropped.any() and not dropped.all()
    assert (dropped == dropped[:, :1]).all()  # one mask per window, shared by its K steps
    assert not (dropped == dropped[:1]).all()  # windows draw their own masks
