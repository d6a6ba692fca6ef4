import math

import numpy as np
import pandas as pd
import pytest

from ml.state_space.evaluation.metrics import pinball
from ml.state_space.evaluation.scoring import (
    pinball_loss,
    quantile_levels,
    score_forecasts,
    summarize,
    summarize_by_fold,
)

Z90 = 1.2815515655446004


def _forecasts(seed: int = 0) -> pd.DataFrame:
    """Three symbols, two folds, h1 and h5; ``rw`` (a calibrated Gaussian band around
    0), ``oracle`` (median = outcome) and ``wide`` (rw's band, three times wider)."""
    rng = np.random.default_rng(seed)
    rows = []
    for symbol in ("AAA", "BBB", "CCC"):
        for fold in (2020, 2021):
            dates = pd.bdate_range(f"{fold}-01-01", periods=150)
            for horizon in (1, 5):
                sigma = 0.01 * math.sqrt(horizon)
                actual = rng.normal(0.0, sigma, dates.size)
                for model, median, width in (
                    ("rw", np.zeros_like(actual), Z90 * sigma),
                    ("oracle", actual, Z90 * sigma),
                    ("wide", np.zeros_like(actual), 3 * Z90 * sigma),
                ):
                    rows.append(
                        pd.DataFrame(
                            {
                                "model": model,
                                "symbol": symbol,
                                "fold": fold,
                                "origin_date": dates,
                                "horizon": horizon,
                                "q0.1": median - width,
                                "q0.5": median,
                                "q0.9": median + width,
                                "actual": actual,
                            }
                        )
                    )
    return pd.concat(rows, ignore_index=True)


@pytest.fixture(scope="module")
def forecasts():
    return _forecasts()


@pytest.fixture(scope="module")
def scores(forecasts):
    return score_forecasts(forecasts, baseline="rw")


def _row(scores, model, symbol="AAA", horizon=1):
    match = scores[
        (scores.model == model) & (scores.symbol == symbol) & (scores.horizon == horizon)
    ]
    assert len(match) == 1
    return match.iloc[0]


def test_quantile_levels_and_pinball_loss():
    assert quantile_levels(["model", "q0.9", "q0.1", "q0.5", "quality"]) == [0.1, 0.5, 0.9]
    rng = np.random.default_rng(3)
    actual, predicted = rng.normal(size=50), rng.normal(size=(50, 3))
    expected = np.mean([pinball(actual, predicted[:, i], q) for i, q in enumerate((0.1, 0.5, 0.9))])
    assert pinball_loss(actual, predicted, [0.1, 0.5, 0.9]).mean() == pytest.approx(expected)


def test_the_baseline_against_itself_has_zero_skill_and_no_verdict(scores):
    rw = _row(scores, "rw")
    assert rw["mae_skill"] == 0.0 and rw["pinball_skill"] == 0.0
    assert math.isnan(rw["dm_mae_pvalue"])
    assert not rw["significantly_better"] and not rw["significantly_worse"]
    assert not rw["beats_baseline"]
    assert rw["n"] == 300  # pooled over both folds
    assert rw["directional_accuracy"] == 0.5  # no change scores a coin flip


def test_an_oracle_median_is_significantly_better(scores):
    oracle = _row(scores, "oracle", horizon=5)
    assert oracle["mae_skill"] == pytest.approx(1.0)
    assert oracle["significantly_better"] and oracle["beats_baseline"]
    assert oracle["ic"] == pytest.approx(1.0)
    assert oracle["directional_accuracy"] == 1.0
    assert oracle["always_up_accuracy"] == pytest.approx(
        _row(scores, "rw", horizon=5)["always_up_accuracy"]
    )


def test_coverage_is_checked_for_every_quantile(scores):
    rw, wide = _row(scores, "rw"), _row(scores, "wide")
    assert rw["coverage_q0.1"] == pytest.approx(0.1, abs=0.05)
    assert rw["band_coverage"] == pytest.approx(0.8, abs=0.06)
    assert wide["band_coverage"] > 0.95 and not wide["calibrated"]
    assert wide["max_calibration_error"] > 0.08
    assert wide["pinball_skill"] < 0 and wide["pinball_significantly_worse"]
    assert not wide["beats_baseline"]
    assert wide["mae_skill"] == 0.0  # same median as the baseline


def test_only_windows_the_baseline_also_forecast_are_scored(forecasts):
    trimmed = forecasts[~((forecasts.model == "rw") & (forecasts.origin_date.dt.month == 1))]
    scores = score_forecasts(trimmed, baseline="rw")
    assert (scores["n"] < 300).all()
    with pytest.raises(ValueError, match="baseline"):
        score_forecasts(forecasts[forecasts.model != "rw"], baseline="rw")


def test_per_fold_scores_and_their_summary(forecasts):
    fold_scores = score_forecasts(forecasts, by=("model", "symbol", "horizon", "fold"))
    assert set(fold_scores["fold"]) == {2020, 2021} and (fold_scores["n"] == 150).all()
    by_fold = summarize_by_fold(fold_scores)
    assert list(by_fold.columns) == [
        "model",
        "horizon",
        "fold",
        "median_mae_skill",
        "median_pinball_skill",
        "median_band_coverage",
        "symbols",
    ]
    assert len(by_fold) == 3 * 2 * 2 and (by_fold["symbols"] == 3).all()


def test_summary_counts_symbols_and_reports_ic_with_standard_errors(forecasts, scores):
    summary = summarize(forecasts, scores)
    oracle = summary[(summary.model == "oracle") & (summary.horizon == 1)].iloc[0]
    assert oracle["symbols"] == 3 and oracle["windows"] == 900
    assert oracle["share_mae_skill_positive"] == 1.0 and oracle["significantly_better"] == 3
    assert oracle["pooled_ic"] == pytest.approx(1.0) and oracle["pooled_ic_se"] < 1e-9
    assert oracle["cross_sectional_ic"] == pytest.approx(1.0)
    rw = summary[(summary.model == "rw") & (summary.horizon == 5)].iloc[0]
    assert math.isnan(rw["pooled_ic"])  # a constant median ranks nothing
    assert rw["median_band_coverage"] == pytest.approx(0.8, abs=0.06)
    assert rw["median_coverage_q0.9"] == pytest.approx(0.9, abs=0.05)


def test_the_bootstrap_ranks_codes_exactly_as_spearman_ranks_values():
    from ml.state_space.evaluation.scoring import _dense_codes, _spearman_of_codes, spearman

    rng = np.random.default_rng(3)
    x = np.round(rng.normal(size=2000), 1)  # many ties
    y = 0.3 * x + rng.normal(size=2000)
    codes_x, codes_y = _dense_codes(x), _dense_codes(y)
    sample = rng.integers(0, 2000, 1500)  # a resample: repeated rows tie too
    assert _spearman_of_codes(codes_x[sample], codes_y[sample]) == pytest.approx(
        spearman(x[sample], y[sample]), abs=1e-12
    )
    assert math.isnan(_spearman_of_codes(codes_x[:1].repeat(10), codes_y[:10]))


def test_gate_passed_counts_the_fits_whose_gate_gave_the_model_a_share():
    from ml.state_space.evaluation.scoring import gate_passed

    windows = pd.DataFrame(
        {
            "symbol": ["A", "A", "B", "C", "C"],
            "fold": [2019, 2019, 2019, 2019, 2020],
            "model_weight": [0.4, 0.4, 0.0, 1.0, 0.0],
        }
    )
    assert gate_passed(windows) == pytest.approx(2 / 4)  # (A 2019), (C 2019) of four fits
    assert math.isnan(gate_passed(windows.assign(model_weight=np.nan)))
    assert math.isnan(gate_passed(windows.drop(columns="model_weight")))


def test_published_figures_summarise_the_symbols_the_global_models_never_fitted():
    from ml.state_space.evaluation.backtest import BacktestConfig
    from ml.state_space.evaluation.report import PUBLISHED_FIGURES, published_figures

    records = []
    for symbol, skill, better in (("A", 0.1, 1), ("B", -0.3, 0), ("C", 0.02, 1), ("D", 0.04, 0)):
        for horizon in (1, 5):
            figures = dict.fromkeys(PUBLISHED_FIGURES, 0.5)
            figures.update(n=100, pinball_skill=skill, significantly_better=better)
            figures.update(significantly_worse=0, beats_baseline=better == 1)
            records.append({"model": "mamba", "symbol": symbol, "horizon": horizon, **figures})
    scores = pd.DataFrame(records)
    config = BacktestConfig(years=(2019,), models=("mamba", "rw"))
    published = published_figures(scores, "mamba", config, {"fit_symbols": "A,B"})
    assert set(published["symbols"]) == {"A", "B", "C", "D"}
    held_out = published["unseen"]["h5"]
    assert held_out["symbols"] == 2 and held_out["n"] == 200
    assert held_out["pinball_skill"] == pytest.approx(0.03)  # the median of C and D
    assert held_out["significantly_better"] == 1 and held_out["beats_baseline"] is False
    assert "unseen" not in published_figures(scores, "mamba", config, {})
