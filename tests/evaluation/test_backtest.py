"""Walk-forward backtest: folds, purge/embargo, the forecast table, and an end-to-end run."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from ml.state_space.data.sources import load_bundled
from ml.state_space.evaluation import backtest as bt
from ml.state_space.evaluation.backtest import BacktestConfig, BacktestTask, backtest
from ml.state_space.evaluation.report import score_backtest, write_backtest
from ml.state_space.models.baselines import RandomWalk
from ml.state_space.models.gbm import GBMConfig, GlobalQuantileGBM
from tests.conftest import tiny_training_config

TINY_GBM = GBMConfig(max_trees=10, min_data_in_leaf=100, validation_rows=200)
COLUMNS = [
    *("model", "symbol", "fold", "origin_date", "horizon", "q0.1", "q0.5", "q0.9", "actual"),
    "model_weight",  # the gate's share of the model (NaN: no gate)
]


@pytest.fixture(scope="module")
def prices() -> dict[str, pd.DataFrame]:
    return {s: load_bundled(s, dataset="sp500-20").loc[:"2022-06-30"] for s in ("AAPL", "KO")}


def tiny_backtest_config(**overrides) -> BacktestConfig:
    settings = {
        "years": (2020, 2021),
        "training": tiny_training_config(epochs=1),
        "gbm": TINY_GBM,
        **overrides,
    }
    return BacktestConfig(**settings)


def test_fold_fits_on_history_that_ends_an_embargo_before_the_test_year(prices):
    index = prices["AAPL"].index
    fold = bt.walk_forward_fold(index, 2021, embargo=30)
    first_test = index.get_loc(fold.origins[0])
    assert fold.origins[0] == pd.Timestamp("2021-01-04")
    assert (fold.origins.year == 2021).all() and len(fold.origins) == 252
    # the last fitted row is the latest target any training window can use
    assert first_test - (fold.fit_end - 1) > 30
    with pytest.raises(ValueError, match="no prices in 1980"):
        bt.walk_forward_fold(index, 1980, embargo=30)


def test_task_fits_only_before_the_embargo_and_scores_realised_returns(prices, monkeypatch):
    fitted: list[pd.DataFrame] = []

    class Recording(RandomWalk):
        def fit(self, history):
            fitted.append(history)
            return super().fit(history)

    monkeypatch.setattr(
        bt,
        "make_forecaster",
        lambda model, config, seed: Recording(config.horizons, config.quantiles),
    )
    config = tiny_backtest_config(models=("rw",))
    rows = BacktestTask("AAPL", prices["AAPL"], 2021, "rw", 42, config).run()

    assert list(rows.columns) == COLUMNS
    (history,) = fitted
    index = prices["AAPL"].index
    gap = index.get_loc(pd.Timestamp("2021-01-04")) - index.get_loc(history.index[-1])
    assert gap > config.embargo  # no training target reaches into the test year
    close = prices["AAPL"]["close"]
    for _, row in rows.sample(20, random_state=0).iterrows():
        origin = index.get_loc(row["origin_date"])
        expected = np.log(close.iloc[origin + row["horizon"]] / close.iloc[origin])
        assert row["actual"] == pytest.approx(expected, rel=1e-12)
    assert set(rows["horizon"]) == {1, 5}
    assert rows["origin_date"].dt.year.eq(2021).all()


def test_origins_without_a_realised_target_are_dropped(prices):
    config = tiny_backtest_config(models=("rw",), years=(2022,))
    rows = BacktestTask("KO", prices["KO"], 2022, "rw", 42, config).run()
    last_date = prices["KO"].index[-1]
    h5 = rows[rows["horizon"] == 5]
    assert h5["origin_date"].max() == prices["KO"].index[-6] and rows["actual"].notna().all()
    assert rows[rows["horizon"] == 1]["origin_date"].max() < last_date


def test_end_to_end_backtest_with_a_tiny_mamba_lightgbm_and_the_baselines(prices, tmp_path):
    config = tiny_backtest_config(models=("mamba", "lgbm", "rw", "drift", "empirical", "garch"))
    result = backtest(prices, config, parallel=2)

    assert not result.failures, result.failures
    forecasts = result.forecasts
    assert list(forecasts.columns) == COLUMNS
    counts = forecasts.groupby(["model", "symbol", "fold", "horizon"]).size()
    assert counts.groupby("model").size().to_dict() == {m: 8 for m in config.models}
    # every model is scored on the same windows
    windows = forecasts.groupby("model")[["symbol", "origin_date", "horizon"]].apply(len)
    assert windows.nunique() == 1
    gated = forecasts["model"].isin(["mamba", "lgbm"])
    assert forecasts.loc[gated, "model_weight"].between(0, 1).all()
    assert forecasts.loc[~gated, "model_weight"].isna().all()  # the baselines have no gate

    report = score_backtest(forecasts)
    assert set(report.summary["model"]) == set(config.models)
    rw = report.scores[report.scores["model"] == "rw"]
    assert (rw["mae_skill"] == 0).all()
    paths = write_backtest(tmp_path, result, report, config, {"command": "test"})
    assert pd.read_parquet(paths["forecasts"]).shape == forecasts.shape
    text = paths["report"].read_text()
    assert "## h = 5 trading days" in text
    calibration = text.split("## Calibration per quantile")[1]
    assert "| model | h | below q0.1 | below q0.5 | below q0.9 | calibrated |" in calibration
    rw = report.summary[(report.summary["model"] == "rw") & (report.summary["horizon"] == 5)]
    assert f"| rw | 5 | {rw['median_coverage_q0.1'].iloc[0]:.3f} |" in calibration


def test_a_global_model_fits_once_per_year_on_every_history_before_the_embargo(prices, monkeypatch):
    fitted: list[dict[str, pd.DataFrame]] = []

    class Recording(GlobalQuantileGBM):
        def fit_many(self, histories):
            fitted.append(histories)
            return super().fit_many(histories)

    monkeypatch.setattr(
        bt,
        "make_forecaster",
        lambda model, config, seed: Recording(config.horizons, config.quantiles, config.gbm),
    )
    ended = {"AAPL": prices["AAPL"], "KO": prices["KO"].loc[:"2020-12-31"]}  # KO has no 2021
    config = tiny_backtest_config(models=("lgbm", "rw"), years=(2021,))
    tasks, skipped = bt.plan_tasks(ended, config)
    (task,) = [t for t in tasks if isinstance(t, bt.GlobalBacktestTask)]
    rows = task.run()

    (histories,) = fitted
    assert set(histories) == {"AAPL", "KO"}  # KO still teaches the model
    first_test = prices["AAPL"].index.get_loc(pd.Timestamp("2021-01-04"))
    for history in histories.values():
        last = prices["AAPL"].index.get_loc(history.index[-1])
        assert first_test - last > config.embargo
    assert set(rows["symbol"]) == {"AAPL"} and rows["origin_date"].dt.year.eq(2021).all()
    assert skipped == [s for s in skipped if s.startswith("KO 2021")]


def test_warm_started_folds_run_in_year_order_each_from_the_previous_fit(prices, monkeypatch):
    starts: list[tuple[int, int | None]] = []

    class Recording(RandomWalk):
        def fit(self, history, symbol=None, warm_start=None, on_epoch=None):
            self.year = history.index[-1].year + 1
            starts.append((self.year, getattr(warm_start, "year", None)))
            return super().fit(history)

    monkeypatch.setattr(bt, "NEURAL_MODELS", ("rw",))
    monkeypatch.setattr(
        bt, "make_forecaster", lambda model, config, seed: Recording(config.horizons)
    )
    config = tiny_backtest_config(models=("rw",), years=(2019, 2020, 2021), warm_start=True)
    tasks, _ = bt.plan_tasks({"AAPL": prices["AAPL"]}, config)
    (task,) = tasks
    assert isinstance(task, bt.WarmStartTask) and task.key == "backtest-rw-AAPL-2019-2021-warm-s42"

    rows = task.run()
    assert starts == [(2019, None), (2020, 2019), (2021, 2020)]
    assert sorted(set(rows["fold"])) == [2019, 2020, 2021]
    cold = bt.plan_tasks({"AAPL": prices["AAPL"]}, replace(config, warm_start=False))[0]
    assert len(cold) == 3 and all(isinstance(t, BacktestTask) for t in cold)


def test_years_outside_a_symbols_history_are_skipped_not_failed(prices):
    short = {"AAPL": prices["AAPL"], "KO": prices["KO"].loc[:"2020-12-31"]}
    result = backtest(short, tiny_backtest_config(models=("rw",), years=(2020, 2021)))
    assert result.failures == []
    assert len(result.skipped) == 1 and result.skipped[0].startswith("KO 2021")
    assert set(zip(result.forecasts.symbol, result.forecasts.fold, strict=True)) == {
        ("AAPL", 2020),
        ("AAPL", 2021),
        ("KO", 2020),
    }


def test_forecasts_whose_window_or_target_touches_a_flagged_day_are_not_scored():
    aapl = load_bundled("AAPL").loc[:"2003-12-31"]  # the stale bar of 2003-01-29
    config = tiny_backtest_config(models=("rw",), years=(2003,))
    rows = backtest({"AAPL": aapl}, config).forecasts
    index, lookback = aapl.index, config.training.model.seq_len
    flagged = index.get_indexer(pd.DatetimeIndex(["2003-01-29", "2003-01-30"]))

    def touches(origin: pd.Timestamp, horizon: int) -> bool:
        at = index.get_loc(origin)
        return any(at - lookback < f <= at + horizon for f in flagged)

    for horizon, group in rows.groupby("horizon"):
        year = index[index.year == 2003][:-horizon]  # the last ones have no outcome yet
        expected = [o for o in year if not touches(o, horizon)]
        assert list(group["origin_date"]) == expected
        assert len(expected) < len(year) - lookback
    assert pd.Timestamp("2003-01-02") in set(rows["origin_date"])


def test_a_global_model_is_fitted_on_the_screened_histories():
    histories = {s: load_bundled(s).loc[:"2009-12-31"] for s in ("ANTM", "KO")}
    tasks, _ = bt.plan_tasks(histories, tiny_backtest_config(models=("lgbm", "rw"), years=(2009,)))
    [global_task] = [t for t in tasks if isinstance(t, bt.GlobalBacktestTask)]
    assert global_task.histories["ANTM"].index[0] == pd.Timestamp("2005-06-02")
    assert all(m.prices.index[0] == pd.Timestamp("2005-06-02") for m in global_task.members
               if m.symbol == "ANTM")


def test_global_models_fit_on_the_fit_symbols_and_forecast_symbols_they_never_saw(monkeypatch):
    fit = {s: load_bundled(s).loc[:"2019-12-31"] for s in ("AAPL", "KO", "XOM")}
    test = {"MSFT": load_bundled("MSFT").loc[:"2019-12-31"]}
    config = tiny_backtest_config(models=("lgbm", "rw"), years=(2019,))
    tasks, _ = bt.plan_tasks(test, config, fit)
    [global_task] = [t for t in tasks if isinstance(t, bt.GlobalBacktestTask)]
    assert sorted(global_task.histories) == ["AAPL", "KO", "XOM"]
    assert [m.symbol for m in global_task.members] == ["MSFT"]

    async def in_process(tasks, parallel, planned, record, progress):
        for task in tasks:
            record(task, bt.timed_run_task(task), 0.0)

    monkeypatch.setattr(bt, "_run_locally", in_process)
    result = backtest(test, config, fit_prices=fit)
    assert not result.failures, result.failures
    assert list(result.forecasts.columns) == COLUMNS
    lgbm = result.forecasts[result.forecasts["model"] == "lgbm"]
    assert set(lgbm["symbol"]) == {"MSFT"} and set(lgbm["fold"]) == {2019}
    rw = result.forecasts[result.forecasts["model"] == "rw"]
    assert len(lgbm) == len(rw)  # the same rows as the baselines


def test_a_year_with_too_little_history_before_it_is_skipped():
    young = {"ABBV": load_bundled("ABBV").loc[:"2017-12-31"]}  # listed 2013-01-02
    _, skipped = bt.plan_tasks(young, tiny_backtest_config(models=("rw",), years=(2015, 2017)))
    assert len(skipped) == 1 and skipped[0].startswith("ABBV 2015:")
    assert f"fewer than {bt.MIN_FIT_ROWS}" in skipped[0]
