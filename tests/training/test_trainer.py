import keras
import numpy as np
import pytest

from ml.state_space.data.quality import DataQualityError
from ml.state_space.data.sources import load_bundled
from ml.state_space.training.trainer import train_symbol
from tests.conftest import tiny_training_config


@pytest.fixture(scope="module")
def aapl():
    return load_bundled("AAPL")


def test_train_symbol_returns_loadable_model_and_full_metrics(aapl, tiny_config, tmp_path):
    result = train_symbol("AAPL", aapl, tiny_config, tmp_path)

    path = tmp_path / "model.keras"
    path.write_bytes(result.model_bytes)
    model = keras.saving.load_model(path)
    n_features = len(result.metadata["features"]["names"])
    assert model.output_shape == (None, 2, 3)
    assert model.input_shape == (None, 20, n_features)

    epochs = result.metrics["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2]
    assert {"loss", "val_loss", "learning_rate", "seconds"} <= set(epochs[0])
    assert result.metrics["best_epoch"] in (1, 2)
    assert result.metrics["stop_reason"] == "max_epochs"
    for horizon in ("h1", "h5"):
        test = result.metrics["test"][horizon]
        assert test["random_walk"]["mae"] > 0
        assert test["skill_vs_random_walk"] == pytest.approx(
            1 - test["mae"] / test["random_walk"]["mae"]
        )
        assert len(result.metrics["test_forecasts"][horizon]["actual"]) == test["n"]

    metadata = result.metadata
    assert metadata["schema_version"] == 1 and metadata["family"] == "mamba"
    assert metadata["split"]["test"]["last"] == str(aapl.index[-1 - 5].date())  # h5 target exists
    assert metadata["split"]["val"]["last"] < metadata["split"]["test"]["first"]  # scored unseen
    assert metadata["data"]["last_date"] == str(aapl.index[-1].date())  # then refit on all
    assert len(metadata["target_scale"]) == 2
    assert metadata["versions"]["keras"] == keras.__version__
    assert (tmp_path / "state" / "best.npz").exists()  # the best epoch, restored
    assert not (tmp_path / "state" / "latest.npz").exists()  # a finished fit: nothing to resume


def test_segments_are_chronological_with_an_embargo(aapl, tiny_config, tmp_path):
    split = train_symbol("AAPL", aapl, tiny_config, tmp_path).metrics["split"]
    position = {str(d.date()): i for i, d in enumerate(aapl.index)}
    longest, seq_len = 5, 20
    # validation inputs start after the last price a training target used
    assert (
        position[split["val"]["first"]] - seq_len + 1 > position[split["train"]["last"]] + longest
    )
    # no training or validation target reaches within `longest` rows of the first test origin
    last_fit_target = position[split["val"]["last"]] + longest
    assert position[split["test"]["first"]] - last_fit_target >= longest


def test_same_seed_gives_same_metrics(aapl, tiny_config, tmp_path):
    first = train_symbol("AAPL", aapl, tiny_config, tmp_path / "a")
    second = train_symbol("AAPL", aapl, tiny_config, tmp_path / "b")
    assert first.metrics["test"] == second.metrics["test"]
    assert [e["val_loss"] for e in first.metrics["epochs"]] == [
        e["val_loss"] for e in second.metrics["epochs"]
    ]


def test_interrupted_training_resumes_from_its_last_epoch(aapl, tiny_config, tmp_path):
    config = tiny_config.__class__(**{**tiny_config.__dict__, "epochs": 3})
    seen = []

    def crash_after_second_epoch(symbol, record):
        seen.append(record["epoch"])
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_symbol("AAPL", aapl, config, tmp_path, on_epoch=crash_after_second_epoch)
    seen.clear()
    result = train_symbol(
        "AAPL", aapl, config, tmp_path, on_epoch=lambda s, r: seen.append(r["epoch"])
    )
    assert seen == [3]
    assert [e["epoch"] for e in result.metrics["epochs"]] == [1, 2, 3]


def test_bad_prices_are_rejected_before_training(aapl, tiny_config, tmp_path):
    broken = aapl.copy()
    broken.iloc[-10, 0] = np.nan
    with pytest.raises(DataQualityError, match="AAPL"):
        train_symbol("AAPL", broken, tiny_config, tmp_path)


def test_resume_state_truncated_by_a_crash_is_discarded_and_training_restarts(
    aapl, tiny_config, tmp_path, caplog
):
    from ml.state_space.orchestration.worker import TrainJob, run_job

    config = tiny_config.__class__(**{**tiny_config.__dict__, "epochs": 3})

    def crash_after_second_epoch(symbol, record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_symbol("AAPL", aapl, config, tmp_path, on_epoch=crash_after_second_epoch)
    state = tmp_path / "state" / "latest.npz"
    state.write_bytes(state.read_bytes()[:100])  # what a damaged disk leaves
    result = run_job(TrainJob("AAPL", aapl, config, str(tmp_path), resume=True))
    assert [e["epoch"] for e in result.metrics["epochs"]] == [1, 2, 3]  # from scratch
    assert "unreadable" in caplog.text


def test_the_per_symbol_trainer_refuses_a_pooled_configuration(tmp_path):
    prices = load_bundled("KO")
    with pytest.raises(ValueError, match="pooled"):
        train_symbol("KO", prices, tiny_training_config(pooled=True), tmp_path)
