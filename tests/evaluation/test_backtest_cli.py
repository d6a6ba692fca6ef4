"""scripts/backtest.py as a user runs it: baselines on bundled data, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from scripts.backtest import main, model_settings, parse_args, publish_dirs


def test_cli_writes_forecasts_summary_report_and_plots(tmp_path, capsys):
    out = tmp_path / "bt"
    argv = ["--symbols", "AAPL,KO", "--years", "2019-2020", "--models", "rw,drift,garch"]
    argv += ["--offline", "--out", str(out), "--parallel", "1", "--no-publish"]
    assert main(argv) == 0
    forecasts = pd.read_parquet(out / "forecasts.parquet")
    assert list(forecasts.columns) == [
        "model",
        "symbol",
        "fold",
        "origin_date",
        "horizon",
        "q0.1",
        "q0.5",
        "q0.9",
        "actual",
        "model_weight",
    ]
    assert set(forecasts["model"]) == {"rw", "drift", "garch"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["years"] == [2019, 2020] and summary["failures"] == []
    assert {row["model"] for row in summary["summary"]} == {"rw", "drift", "garch"}
    assert "## h = 30 trading days" in (out / "report.md").read_text()
    assert "## Cross-section" in (out / "report.md").read_text()
    assert {row["model"] for row in summary["cross_section"]} == {"rw", "drift", "garch"}
    assert (out / "skill_by_year.png").stat().st_size > 1000
    assert "h = 1 trading days" in capsys.readouterr().out


def test_settings_override_the_training_and_lightgbm_configs():
    args = parse_args(
        [
            "--set",
            "target_scaling=volatility",
            "--set",
            "days=null",
            "--set",
            "model.d_model=32",
            "--set",
            "gbm.num_leaves=31",
            "--epochs",
            "3",
        ]
    )
    config, gbm = model_settings(args)
    assert config.target_scaling == "volatility" and config.days is None
    assert config.model.d_model == 32 and config.epochs == 3
    assert gbm.num_leaves == 31


BAD_SETTINGS = ["nosuch=1", "model.nosuch=1", "gbm.nosuch=1", "gbm.num_leaves=0", "other.days=1"]


@pytest.mark.parametrize("setting", [*BAD_SETTINGS, "target_scaling=log"])
def test_bad_settings_are_usage_errors(setting, capsys):
    assert main(["--set", setting, "--offline", "--models", "rw"]) == 2
    assert "error:" in capsys.readouterr().err


def test_cli_runs_its_tasks_on_a_dask_cluster(tmp_path, dask_cluster):
    out = tmp_path / "bt"
    argv = ["--symbols", "KO", "--years", "2020", "--models", "rw,garch", "--offline"]
    argv += ["--scheduler", dask_cluster, "--out", str(out), "--no-plots", "--no-publish"]
    assert main(argv) == 0
    forecasts = pd.read_parquet(out / "forecasts.parquet")
    assert set(forecasts["model"]) == {"rw", "garch"} and set(forecasts["fold"]) == {2020}


def test_each_served_family_publishes_to_its_own_models_directory():
    models = ("mamba", "lstm", "lgbm", "rw")
    assert publish_dirs(models, None, no_publish=False) == {
        "mamba": Path("models/mamba"),
        "lgbm": Path("models/lgbm"),
    }
    alone = publish_dirs(("lgbm", "rw"), "elsewhere", no_publish=False)
    assert alone == {"lgbm": Path("elsewhere")}
    assert publish_dirs(models, "elsewhere", no_publish=True) == {}
    with pytest.raises(ValueError, match="one served family per run"):
        publish_dirs(models, "elsewhere", no_publish=False)


def test_lightgbm_fitted_on_bundled_symbols_forecasts_a_users_own(tmp_path):
    from ml.state_space.data.sources import load_bundled

    own = load_bundled("MSFT").loc["2012":"2019"].reset_index()
    own.insert(1, "symbol", "MYCO")  # a symbol the model never saw, from the user's file
    prices = tmp_path / "mine.csv"
    own.rename(columns={"index": "date"}).to_csv(prices, index=False)
    out = tmp_path / "bt"
    argv = ["--prices", str(prices), "--fit-symbols", "AAPL,KO,XOM", "--years", "2019"]
    argv += ["--models", "lgbm,rw", "--offline", "--out", str(out), "--no-plots", "--no-publish"]
    argv += ["--parallel", "1", "--set", "gbm.max_trees=10", "--set", "gbm.validation_rows=200"]
    assert main(argv) == 0
    forecasts = pd.read_parquet(out / "forecasts.parquet")
    assert set(forecasts["symbol"]) == {"MYCO"} and set(forecasts["model"]) == {"lgbm", "rw"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["fit_symbols"] == "AAPL,KO,XOM" and summary["symbols"] == "MYCO"
    assert "global models fitted on: AAPL,KO,XOM" in (out / "report.md").read_text()


def test_fit_symbols_without_a_global_model_are_a_usage_error(capsys):
    assert main(["--fit-symbols", "SP500", "--models", "rw,garch", "--offline"]) == 2
    assert "has none" in capsys.readouterr().err
