"""The global LightGBM quantile peer: what it learns, how it scales, where it stops.

The contract (shape, causality, non-crossing) is checked in ``test_contract.py``; here,
synthetic series with a known structure check that the model learns it.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from ml.state_space.models.base import forward_log_returns
from ml.state_space.models.garch import DriftGarchFHS
from ml.state_space.models.gbm import EMBARGO, TRAIN, VALIDATE, GBMConfig, GlobalQuantileGBM

SMALL = GBMConfig(
    max_trees=60, min_data_in_leaf=100, validation_rows=300, learning_rate=0.1, gate=False
)


def series(returns: np.ndarray, start: str = "2000-01-03") -> pd.DataFrame:
    index = pd.bdate_range(start, periods=len(returns) + 1)
    close = 100 * np.exp(np.concatenate([[0.0], np.cumsum(returns)]))
    return pd.DataFrame({"close": close}, index=index)


def mean_reverting(seed: int, n: int = 3000, phi: float = -0.4) -> pd.DataFrame:
    noise = np.random.default_rng(seed).normal(0, 0.01, n)
    returns = np.zeros(n)
    for t in range(1, n):
        returns[t] = phi * returns[t - 1] + noise[t]
    return series(returns)


def test_the_global_model_learns_a_pattern_shared_by_its_series():
    histories = {f"S{i}": mean_reverting(i) for i in range(3)}
    fitted = {s: h.iloc[:2500] for s, h in histories.items()}
    model = GlobalQuantileGBM(horizons=(1, 5), config=SMALL).fit_many(fitted)

    test = histories["S0"]
    origins = test.index[2510:2990]
    median = model.predict_quantiles(test, origins)[:, 0, 1]
    actual = forward_log_returns(test, 1)[test.index.get_indexer(origins)]
    assert spearmanr(median, actual).statistic > 0.2  # tomorrow undoes part of today


def test_bands_scale_with_the_volatility_known_at_the_origin():
    rng = np.random.default_rng(0)
    regime = np.repeat(np.tile([0.005, 0.02], 8), 250)  # calm and rough years in turn
    prices = series(rng.normal(0, 1, len(regime)) * regime)
    model = GlobalQuantileGBM(horizons=(1,), config=SMALL).fit(prices.iloc[:3500])

    origins = prices.index[3520:]
    quantiles = model.predict_quantiles(prices, origins)[:, 0]
    width = quantiles[:, 2] - quantiles[:, 0]
    vol = regime[3519 : 3519 + len(origins)]
    calm, rough = width[vol == 0.005][100:], width[vol == 0.02][100:]  # after 60-day lag
    assert np.median(rough) > 2.5 * np.median(calm)


def test_early_stopping_validates_on_each_series_latest_rows_after_an_embargo():
    histories = {"A": mean_reverting(0, 1200), "B": mean_reverting(1, 900)}
    model = GlobalQuantileGBM(horizons=(5,), config=SMALL)
    designs = {s: model._design(h) for s, h in histories.items()}

    rows = model._rows(histories, designs, horizon=5)
    sizes = [len(d.positions) - 5 for d in designs.values()]  # rows with a known 5-day target
    roles = np.split(rows.role, np.cumsum(sizes)[:-1])
    for role in roles:
        assert (role[-SMALL.validation_rows :] == VALIDATE).all()
        assert (role[-SMALL.validation_rows - 5 : -SMALL.validation_rows] == EMBARGO).all()
        assert (role[: -SMALL.validation_rows - 5] == TRAIN).all()
    assert np.isfinite(rows.targets).all() and len(rows.inputs) == sum(sizes)


def test_origins_before_the_feature_warm_up_are_rejected():
    prices = mean_reverting(0, 1000)
    model = GlobalQuantileGBM(horizons=(1,), config=SMALL).fit(prices)
    with pytest.raises(ValueError, match="rows of history the features need"):
        model.predict_quantiles(prices, prices.index[[400, 600]])


def test_an_unfitted_model_says_so():
    prices = mean_reverting(0, 400)
    with pytest.raises(RuntimeError, match="not fitted"):
        GlobalQuantileGBM().predict_quantiles(prices, prices.index[-5:])


GATED = replace(SMALL, gate=True)


def iid(seed: int, n: int = 3000) -> pd.DataFrame:
    return series(np.random.default_rng(seed).normal(0.0003, 0.01, n))


def test_the_gate_serves_the_model_where_validation_shows_skill_and_the_fallback_elsewhere():
    histories = {"MR0": mean_reverting(0), "MR1": mean_reverting(1), "NOISE": iid(2)}
    model = GlobalQuantileGBM(horizons=(1, 5), config=GATED).fit_many(histories)

    assert model.gates_["MR0"].weights[0] > 0.5  # h1: tomorrow undoes part of today
    assert model.gates_["NOISE"].weights.tolist() == [0.0, 0.0]
    noise = histories["NOISE"]
    origins = noise.index[-400:-10]
    served = model.for_series("NOISE").predict_quantiles(noise, origins)
    fallback = DriftGarchFHS((1, 5), model.quantiles).fit(noise)
    np.testing.assert_allclose(served, fallback.predict_quantiles(noise, origins), rtol=1e-9)
    mr = histories["MR0"]
    gated = model.for_series("MR0").predict_quantiles(mr, mr.index[-400:-10])
    assert not np.allclose(gated[:, 0], fallback.predict_quantiles(mr, mr.index[-400:-10])[:, 0])
    assert (np.diff(gated, axis=-1) >= 0).all()
    with pytest.raises(ValueError, match="not among the series"):
        model.for_series("OTHER")
    assert GlobalQuantileGBM(config=SMALL).for_series("ANY").name == "lgbm"  # ungated: itself


@pytest.fixture(scope="module")
def gated_pair() -> tuple[GlobalQuantileGBM, dict[str, pd.DataFrame]]:
    histories = {"MR0": mean_reverting(0), "NOISE": iid(2)}
    return GlobalQuantileGBM(horizons=(1, 5), config=GATED).fit_many(histories), histories


def test_a_fitted_model_crosses_processes_intact(gated_pair):
    import pickle

    model, histories = gated_pair
    copied = pickle.loads(pickle.dumps(model))
    origins = histories["MR0"].index[-50:-10]
    assert copied.stopped_.keys() == model.stopped_.keys()
    np.testing.assert_array_equal(
        copied.series("MR0").predict_quantiles(histories["MR0"], origins),
        model.series("MR0").predict_quantiles(histories["MR0"], origins),
    )


def test_an_unseen_series_is_gated_on_its_own_latest_rows(gated_pair):
    model, _ = gated_pair
    unseen = mean_reverting(7)
    forecaster = model.for_series("MR7", unseen)
    assert forecaster.correction.blend_weight[0] > 0.5  # the shared pattern holds for it too
    assert "MR7" not in model.gates_  # gating an unseen series leaves the model as it was
    noise = model.for_series("NOISE9", iid(9))
    assert noise.correction.blend_weight == (0.0, 0.0)
    origins = unseen.index[-100:-10]
    expected = DriftGarchFHS((1, 5), model.quantiles).fit(iid(9))
    np.testing.assert_allclose(
        noise.predict_quantiles(iid(9), origins),
        expected.predict_quantiles(iid(9), origins),
        rtol=1e-9,
    )
    with pytest.raises(ValueError, match="pass its history"):
        model.for_series("MR7")


def test_series_too_short_for_the_features_are_left_out_of_the_fit():
    histories = {"LONG": mean_reverting(0), "SHORT": mean_reverting(1).iloc[:300]}
    model = GlobalQuantileGBM(horizons=(1,), config=GATED).fit_many(histories)
    assert set(model.gates_) == {"LONG"}
    with pytest.raises(ValueError, match="no series has more than"):
        GlobalQuantileGBM(horizons=(1,), config=GATED).fit_many({"SHORT": histories["SHORT"]})


def test_training_rows_that_touch_a_flagged_day_are_left_out():
    prices = mean_reverting(0)
    model = GlobalQuantileGBM(horizons=(5,), config=SMALL)
    design = {"S": model._design(prices)}
    clean = model._rows({"S": prices}, design, 5)
    prices.attrs["flagged"] = [f"{prices.index[2000]:%Y-%m-%d}"]
    flagged = model._rows({"S": prices}, design, 5)
    dropped = np.setdiff1d(clean.positions, flagged.positions)
    # the 5 rows whose target reaches the day and the 60 whose volatility window holds it
    np.testing.assert_array_equal(dropped, np.arange(2000 - 5, 2000 + 60))


def test_ohlcv_and_cross_sectional_inputs_on_real_universe_prices():
    from ml.state_space.data.bundled import sectors
    from ml.state_space.data.sources import load_bundled
    from ml.state_space.features.cross_section import CROSS_SECTION_FEATURES, CrossSection
    from ml.state_space.features.engineer import feature_names_for

    histories = {s: load_bundled(s).loc["2010":"2015"] for s in ("AAPL", "KO", "XOM", "JPM")}
    histories["RRC"] = load_bundled("RRC").loc["2010":"2015"]  # close-only: NaN OHLCV inputs
    config = replace(SMALL, ohlcv=True, cross_section=True, gate=True)
    context = CrossSection.from_histories(histories, min_members=3)
    model = GlobalQuantileGBM(horizons=(1, 5), config=config).fit_many(histories, context)
    assert model.context_ is context and set(context.sectors) == set(sectors())
    names = [*feature_names_for(True, True), *CROSS_SECTION_FEATURES, "log_vol_60"]
    assert model.feature_names() == names
    unseen = load_bundled("MSFT").loc["2010":"2016"]
    origins = unseen.index[-200:]
    quantiles = model.for_series("MSFT", unseen.loc[:"2015"]).predict_quantiles(unseen, origins)
    assert np.isfinite(quantiles).all() and (np.diff(quantiles, axis=-1) >= 0).all()
    design = model._design(histories["RRC"], "RRC")
    assert design.features["gk_vol_20"].isna().all() and design.features["xs_rank_5"].notna().any()
    with pytest.raises(ValueError, match="cannot be saved or served"):
        model.to_bytes()
