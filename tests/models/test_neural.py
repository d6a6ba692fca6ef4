"""The fitted pipeline: parity with training-time forecasts, persistence, the model card."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from ml.state_space.data.sources import load_bundled
from ml.state_space.engine.loop import best_epoch
from ml.state_space.models.base import horizon_volatility
from ml.state_space.models.card import CardSchemaError, ModelCard
from ml.state_space.models.garch import DriftGarchFHS
from ml.state_space.models.mamba.forecaster import MambaForecaster
from ml.state_space.models.neural import InsufficientHistoryError, NeuralForecaster, NotFittedError
from ml.state_space.models.postprocess import QuantileCorrection
from ml.state_space.training.trainer import train_symbol
from tests.conftest import tiny_training_config


@pytest.fixture(scope="module")
def aapl() -> pd.DataFrame:
    return load_bundled("AAPL")


@pytest.fixture(scope="module")
def trained(aapl, tmp_path_factory):
    """Served without a refit: the served model is the one scored on the test block."""
    config = tiny_training_config(refit=False)
    return train_symbol("AAPL", aapl, config, tmp_path_factory.mktemp("train"))


@pytest.fixture(scope="module")
def forecaster(trained) -> NeuralForecaster:
    card = ModelCard.from_dict(trained.metadata)
    return NeuralForecaster.from_bytes(trained.model_bytes, card)


def test_predict_up_to_an_anchor_equals_the_stored_test_forecast(aapl, trained, forecaster):
    table = trained.metrics["test_forecasts"]
    for i in (0, len(table["anchor_dates"]) // 2, len(table["anchor_dates"]) - 1):
        anchor = pd.Timestamp(table["anchor_dates"][i])
        served = forecaster.predict(aapl.loc[:anchor])
        assert served.attrs["as_of"] == anchor
        for horizon in forecaster.horizons:
            for level in ("q0.1", "q0.5", "q0.9"):
                stored = table[f"h{horizon}"][level][i]
                assert served.loc[horizon, level] == pytest.approx(stored, abs=2e-5)


def test_predict_returns_one_row_per_horizon_with_nyse_target_dates(aapl, forecaster):
    forecast = forecaster.predict(aapl.loc[:"2013-03-28"])
    assert list(forecast.index) == [1, 5]
    assert forecast.loc[1, "target_date"] == pd.Timestamp("2013-04-01")  # Good Friday closed
    last_close = aapl["close"].loc["2013-03-28"]
    np.testing.assert_allclose(forecast["price_q0.5"], last_close * np.exp(forecast["q0.5"]))
    assert (forecast["q0.1"] <= forecast["q0.5"]).all() and (
        forecast["q0.5"] <= forecast["q0.9"]
    ).all()


def test_save_and_load_round_trip(aapl, forecaster, tmp_path):
    forecaster.save(tmp_path / "aapl")
    loaded = NeuralForecaster.load(tmp_path / "aapl")
    assert isinstance(loaded, MambaForecaster)
    assert loaded.card == forecaster.card
    origins = aapl.index[-60:-30]
    np.testing.assert_allclose(
        loaded.predict_quantiles(aapl, origins), forecaster.predict_quantiles(aapl, origins)
    )


def test_many_origins_equal_single_origin_forecasts(aapl, forecaster):
    origins = aapl.index[-300:]  # more than one padded inference batch
    many = forecaster.predict_quantiles(aapl, origins)
    for i in (0, 255, 256, 299):
        one = forecaster.predict_quantiles(aapl, origins[i : i + 1])[0]
        np.testing.assert_allclose(many[i], one, atol=1e-6)


def test_too_little_history_is_a_clear_error(aapl, forecaster):
    with pytest.raises(InsufficientHistoryError, match="needs at least"):
        forecaster.predict(aapl.iloc[:100])


def test_unfitted_forecaster_refuses_to_predict(aapl):
    with pytest.raises(NotFittedError, match="fit"):
        MambaForecaster().predict(aapl)


def test_card_of_another_schema_version_says_to_retrain(trained):
    with pytest.raises(CardSchemaError, match="Retrain"):
        ModelCard.from_dict({**trained.metadata, "schema_version": 0})
    assert ModelCard.from_dict(json.loads(json.dumps(trained.metadata))).to_dict() == (
        trained.metadata
    )


def test_a_keras_file_loads_after_importing_only_the_package(trained, tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(trained.model_bytes)
    code = (
        "import sys, keras, ml.state_space; "
        f"m = keras.models.load_model({str(path)!r}); print(m.output_shape)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "(None, 2, 3)" in done.stdout


def test_volatility_scaled_targets_scale_forecasts_with_the_regime(aapl, tmp_path):
    config = tiny_training_config(epochs=1, target_scaling="volatility")
    history = aapl.loc[:"2019-12-31"]
    model = MambaForecaster(training_config=config).fit(history, symbol="AAPL")
    origins = aapl.loc["2020-01-02":"2020-06-30"].index
    quantiles = model.predict_quantiles(aapl, origins)

    # forecast = network output * training target scale * sigma_60(t) * sqrt(h)
    positions = aapl.index.get_indexer(origins)
    scale = horizon_volatility(aapl, positions, model.horizons)
    unscaled = quantiles / scale[:, :, None] / model.target_scale[None, :, None]
    assert np.isfinite(unscaled).all()
    # so the band widens with the March 2020 volatility, as sigma_60 does
    width = quantiles[:, 0, -1] - quantiles[:, 0, 0]
    march, january = origins.month == 3, origins.month == 1
    assert width[march].mean() > 2 * width[january].mean()

    model.save(tmp_path / "vol")
    loaded = NeuralForecaster.load(tmp_path / "vol")
    assert loaded.config.target_scaling == "volatility"
    np.testing.assert_allclose(loaded.predict_quantiles(aapl, origins), quantiles, rtol=1e-5)


def test_unknown_target_scaling_is_rejected():
    with pytest.raises(ValueError, match="target_scaling"):
        tiny_training_config(target_scaling="log")


def test_the_blend_is_fitted_stored_and_served(aapl, tmp_path):
    config = tiny_training_config(epochs=1, blend=True)
    model = MambaForecaster(training_config=config).fit(aapl.loc[:"2019-12-31"], symbol="AAPL")
    correction = model.card.correction
    assert len(correction["blend_weight"]) == len(model.horizons)
    assert all(0.0 <= w <= 1.0 for w in correction["blend_weight"])
    origins = aapl.loc["2020-01-02":"2020-03-31"].index
    quantiles = model.predict_quantiles(aapl, origins)
    assert (np.diff(quantiles, axis=-1) >= 0).all()

    model.save(tmp_path / "corrected")
    loaded = NeuralForecaster.load(tmp_path / "corrected")
    assert loaded.card.correction == correction
    np.testing.assert_allclose(loaded.predict_quantiles(aapl, origins), quantiles, rtol=1e-5)


def test_the_baseline_variant_is_the_fallback_and_the_blend_weights_pick_a_variant(aapl, trained):
    model = NeuralForecaster.from_bytes(trained.model_bytes, ModelCard.from_dict(trained.metadata))
    model.correction = QuantileCorrection((0.0, 1.0), ((0.0,) * 3, (0.0,) * 3))
    origins = aapl.loc["2015-01-02":"2015-06-30"].index
    variants = model.predict_variants(aapl, origins)
    fitted_on = aapl.loc[model.card.data.first_date : model.card.data.last_date]
    fallback = DriftGarchFHS(model.horizons, model.quantiles).fit(fitted_on)  # the default
    assert model.baseline_name == "drift-garch-fhs"
    np.testing.assert_allclose(variants["baseline"], fallback.predict_quantiles(aapl, origins))
    np.testing.assert_allclose(variants["trained"][:, 0], variants["baseline"][:, 0], atol=1e-7)
    trained_h5, model_h5 = variants["trained"][:, 1], variants["model"][:, 1]
    np.testing.assert_allclose(trained_h5[:, 1], model_h5[:, 1], atol=1e-7)  # the median
    width = np.ptp(variants["trained"], axis=-1)  # the network's h5 band, widened where
    assert (width[:, 1] >= width[:, 0] - 1e-9).all()  # it is narrower than h1's
    assert [model.serves(h) for h in model.horizons] == ["baseline", "model"]
    model.correction = QuantileCorrection((0.4, 1.0), ((0.0,) * 3, (0.0,) * 3))
    assert model.serves(1) == "blend" and model.serves(1, "model") == "model"


def test_predict_serves_the_variant_chosen_per_horizon(aapl, forecaster):
    prices = aapl.loc[:"2016-06-30"]
    forecast = forecaster.predict(prices, {1: "baseline", 5: "model"})
    assert list(forecast["serves"]) == ["baseline", "model"]
    baseline = forecaster.fallback.predict_quantiles(prices, prices.index[-1:])[0, 0]
    np.testing.assert_allclose(forecast.loc[1, ["q0.1", "q0.5", "q0.9"]], baseline)
    alone = forecaster.predict_variants(prices, prices.index[-1:])["model"][0, 1]
    np.testing.assert_allclose(forecast.loc[5, ["q0.1", "q0.5", "q0.9"]], alone, rtol=1e-6)


def test_a_refit_learns_every_window_for_the_selected_epochs(aapl):
    prices = aapl.loc[:"2019-12-31"]
    config = tiny_training_config(epochs=3, refit=True, blend=False)  # the network serves
    refitted = MambaForecaster(training_config=config).fit(prices, symbol="AAPL")
    card = refitted.card
    assert card.refit_epochs == (best_epoch(refitted.history) or len(refitted.history))
    whole = card.split["refit"]
    assert whole.last == card.split["val"].last  # up to the last price with known targets
    assert whole.windows >= card.split["train"].windows + card.split["val"].windows

    plain = MambaForecaster(training_config=replace(config, refit=False)).fit(prices)
    origins = aapl.loc["2020-01-02":"2020-02-28"].index
    models = [m.predict_quantiles(aapl, origins, "model") for m in (refitted, plain)]
    assert not np.allclose(*models)  # the refit is another network
    again = MambaForecaster(training_config=config).fit(prices, symbol="AAPL")
    np.testing.assert_allclose(again.predict_quantiles(aapl, origins, "model"), models[0])


def test_a_network_that_serves_no_horizon_is_not_refitted_but_its_fallback_is(aapl, monkeypatch):
    import ml.state_space.models.neural as neural

    prices = aapl.loc[:"2019-12-31"]
    fitted = MambaForecaster(training_config=tiny_training_config(refit=False)).fit(
        prices.iloc[:-250], symbol="AAPL"
    )
    gated = QuantileCorrection((0.0, 0.0), ((0.0,) * 3,) * 2)  # the fallback everywhere
    fitted.correction = gated
    fitted.card = replace(fitted.card, correction=gated.to_dict())
    network = fitted.network
    monkeypatch.setattr(neural, "refit_network", lambda *a, **k: pytest.fail("retrained"))

    fitted.refit(prices)
    assert fitted.network is network and fitted.card.refit_epochs is None
    assert fitted.card.data.last_date == "2019-12-31"  # what is served has seen every price
    assert fitted.card.data_quality["rows"] == fitted.card.data.rows
    served_rows = prices.iloc[-fitted.config.days :]  # the config's training window
    alone = DriftGarchFHS(fitted.horizons, fitted.quantiles).fit(served_rows)
    origins = aapl.loc["2020-01-02":"2020-01-31"].index
    expected = alone.predict_quantiles(aapl, origins)
    np.testing.assert_allclose(fitted.predict_quantiles(aapl, origins), expected, rtol=1e-9)
    loaded = NeuralForecaster.from_bytes(fitted.to_bytes(), fitted.card)
    np.testing.assert_allclose(loaded.predict_quantiles(aapl, origins), expected, rtol=1e-9)


def test_a_warm_start_begins_from_the_earlier_fits_weights(aapl, monkeypatch):
    import ml.state_space.models.neural as neural

    config = tiny_training_config(epochs=1, refit=False)
    earlier = MambaForecaster(training_config=config).fit(aapl.loc[:"2018-12-31"])
    started_from = []
    real_fit = neural.fit_network

    def recording(trainer, *args, **kwargs):
        started_from.append([w.copy() for w in trainer.get_weights()])
        return real_fit(trainer, *args, **kwargs)

    monkeypatch.setattr(neural, "fit_network", recording)
    later = MambaForecaster(training_config=config)
    later.fit(aapl.loc[:"2019-12-31"], warm_start=earlier)
    cold = MambaForecaster(training_config=config).fit(aapl.loc[:"2019-12-31"])

    warm_start, cold_start = started_from
    for start, fitted in zip(warm_start, earlier.network.get_weights(), strict=True):
        np.testing.assert_array_equal(start, fitted)
    assert any(not np.array_equal(w, c) for w, c in zip(warm_start, cold_start, strict=True))
    assert later.card.features.names == cold.card.features.names
    other = MambaForecaster(training_config=replace(config, model=replace(config.model, d_model=8)))
    with pytest.raises(ValueError, match="cannot warm-start"):
        other.fit(aapl.loc[:"2019-12-31"], warm_start=earlier)


def test_the_trainer_serves_a_refit_on_every_price_and_keeps_the_test_scores(aapl, tmp_path):
    prices = aapl.loc[:"2018-12-31"]
    config = tiny_training_config(refit=True, blend=False)  # the network itself is served
    result = train_symbol("AAPL", prices, config, tmp_path)
    card = ModelCard.from_dict(result.metadata)
    assert card.data.last_date == "2018-12-31"  # the served model saw the test block
    assert card.split["refit"].last > card.split["test"].first
    assert card.refit_epochs == result.metrics["refit_epochs"] == result.metrics["best_epoch"]
    assert set(result.metrics["test"]) == {"h1", "h5"}  # scored before the refit
    served = NeuralForecaster.from_bytes(result.model_bytes, card)
    anchor = pd.Timestamp(result.metrics["test_forecasts"]["anchor_dates"][-1])
    stored = result.metrics["test_forecasts"]["h1"]["q0.5"][-1]
    assert served.predict(prices.loc[:anchor]).loc[1, "q0.5"] != pytest.approx(stored, abs=2e-5)


def test_a_forecaster_trained_at_several_steps_serves_one_window_per_forecast(aapl, tmp_path):
    prices = aapl.loc[:"2019-12-31"]
    config = tiny_training_config(supervised_steps=4, refit=True)
    fitted = MambaForecaster(training_config=config).fit(prices, symbol="AAPL")
    assert fitted.card.config["supervised_steps"] == 4
    assert fitted.network.output_shape == (None, 2, 3)  # the served network: last step only
    origins = aapl.loc["2020-01-02":"2020-01-31"].index
    quantiles = fitted.predict_quantiles(aapl, origins)
    assert quantiles.shape == (len(origins), 2, 3) and np.isfinite(quantiles).all()
    loaded = NeuralForecaster.load(fitted.save(tmp_path / "m"))
    np.testing.assert_allclose(loaded.predict_quantiles(aapl, origins), quantiles, rtol=1e-6)
    one_step = MambaForecaster(training_config=replace(config, supervised_steps=1)).fit(prices)
    networks = [m.predict_quantiles(aapl, origins, "model") for m in (one_step, fitted)]
    assert not np.allclose(*networks)  # trained otherwise
