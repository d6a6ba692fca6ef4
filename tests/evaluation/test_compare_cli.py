"""scripts/compare_backtests.py: variants scored on the windows they share."""

from __future__ import annotations

import numpy as np
import pandas as pd

from scripts.compare_backtests import load_variants, main, with_ensemble, with_monotone_bands


def _run(path, models, dates, seed):
    rng = np.random.default_rng(seed)
    actual = rng.normal(0, 0.01, len(dates))
    rows = [
        pd.DataFrame(
            {
                "model": m,
                "symbol": s,
                "fold": 2020,
                "origin_date": dates,
                "horizon": 1,
                "q0.1": -0.013,
                "q0.5": 0.0 if m == "rw" else actual / 2,
                "q0.9": 0.013,
                "actual": actual,
            }
        )
        for m in models
        for s in ("AAA", "BBB", "CCC")
    ]
    path.mkdir()
    pd.concat(rows).to_parquet(path / "forecasts.parquet")
    return path


def test_variants_are_renamed_and_restricted_to_shared_windows(tmp_path, capsys):
    dates = pd.bdate_range("2020-01-01", periods=120)
    first = _run(tmp_path / "global", ["rw", "mamba"], dates, 0)
    second = _run(tmp_path / "vol", ["rw", "mamba", "lstm"], dates[20:], 0)
    variants = load_variants([first, second], {"mamba"})
    assert set(variants["model"]) == {"rw", "global/mamba", "vol/mamba"}
    assert variants["origin_date"].min() == dates[20]
    assert main([str(first), str(second), "--models", "mamba"]) == 0
    printed = capsys.readouterr().out
    assert "| vol/mamba | 3 |" in printed and "| global/mamba | 3 |" in printed
    assert "| vol/mamba | 1 | " in printed.split("## Calibration per quantile")[1]
    assert main([str(first), str(tmp_path / "nothing")]) == 2


def test_monotone_bands_variant_widens_only_the_narrower_longer_horizon():
    dates = pd.bdate_range("2020-01-01", periods=3)
    rows = []
    for horizon, half_width in ((1, 0.02), (5, 0.01)):  # the 5-day band is too narrow
        rows.append(
            pd.DataFrame(
                {
                    "model": ["mamba"] * 3 + ["rw"] * 3,
                    "symbol": "AAA",
                    "fold": 2020,
                    "origin_date": list(dates) * 2,
                    "horizon": horizon,
                    "q0.1": -half_width,
                    "q0.5": 0.001,
                    "q0.9": half_width,
                    "actual": 0.0,
                }
            )
        )
    forecasts = pd.concat(rows, ignore_index=True)
    scored = with_monotone_bands(forecasts)
    assert set(scored["model"]) == {"mamba", "rw", "mamba+monotone"}
    widened = scored[scored["model"] == "mamba+monotone"].set_index(["origin_date", "horizon"])
    assert len(widened) == 6
    np.testing.assert_allclose(widened.xs(5, level="horizon")["q0.9"], 0.02)
    np.testing.assert_allclose(widened.xs(5, level="horizon")["q0.1"], -0.02)
    np.testing.assert_allclose(widened.xs(1, level="horizon")["q0.9"], 0.02)


def test_an_ensemble_averages_the_runs_and_variants_can_be_scored_against_each_other(
    tmp_path, capsys
):
    dates = pd.bdate_range("2020-01-01", periods=120)
    first = _run(tmp_path / "s1", ["rw", "mamba"], dates, 0)
    second = _run(tmp_path / "s2", ["rw", "mamba"], dates, 0)
    frame = pd.read_parquet(second / "forecasts.parquet")
    frame.loc[frame["model"] == "mamba", "q0.5"] = 0.0  # the second seed forecasts no change
    frame.to_parquet(second / "forecasts.parquet")
    forecasts = with_ensemble(load_variants([first, second], None))
    ensemble = forecasts[forecasts["model"] == "ensemble/mamba"].set_index(
        ["symbol", "origin_date"]
    )
    member = forecasts[forecasts["model"] == "s1/mamba"].set_index(["symbol", "origin_date"])
    np.testing.assert_allclose(ensemble["q0.5"], member["q0.5"].reindex(ensemble.index) / 2)

    assert main([str(first), str(second), "--ensemble", "--against", "s2/mamba"]) == 0
    printed = capsys.readouterr().out
    assert "against s2/mamba" in printed
    # the half-way forecast is better than no change on every symbol: significant skill
    assert "| ensemble/mamba | 3 | 100% |" in printed and "| rw |" not in printed
    assert main([str(first), "--against", "nope/mamba"]) == 2


def test_symbols_restricts_the_scoring_to_those_symbols(tmp_path, capsys):
    dates = pd.bdate_range("2020-01-01", periods=120)
    run = _run(tmp_path / "global", ["rw", "lgbm"], dates, 0)
    assert main([str(run), "--symbols", "AAA,CCC"]) == 0
    assert "| global/lgbm | 2 |" in capsys.readouterr().out
    assert main([str(run), "--symbols", "ZZZ"]) == 1  # nothing left to score
