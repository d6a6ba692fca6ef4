import json

import pytest

from ml.state_space.evaluation.review import build_review, is_miscalibrated, training_flags
from ml.state_space.registry import ModelRegistry
from scripts.review_metrics import main as review_main


def _horizon(skill: float, coverage: float = 0.8) -> dict:
    rw_mae = 0.02
    return {
        "n": 3,
        "mae": rw_mae * (1 - skill),
        "rmse": 0.03,
        "directional_accuracy": 0.52,
        "skill_vs_random_walk": skill,
        "skill_vs_drift": skill - 0.01,
        "coverage": {"0.1": 0.1, "0.5": 0.5, "0.9": 0.9},
        "pinball": {"0.1": 0.01, "0.5": 0.01, "0.9": 0.01},
        "interval_coverage": coverage,
        "random_walk": {"mae": rw_mae, "rmse": 0.03, "pinball_median": 0.01},
        "drift": {"mae": 0.021, "rmse": 0.03, "value": 0.0005},
        "always_up_directional_accuracy": 0.53,
    }


def _metrics(symbol: str, skills: tuple[float, float], val_losses: list[float]) -> dict:
    epochs = [
        {"epoch": i + 1, "loss": 1.0, "val_loss": v, "learning_rate": 1e-3, "seconds": 1.0}
        for i, v in enumerate(val_losses)
    ]
    best = min(epochs, key=lambda e: e["val_loss"])["epoch"]
    series = {
        "actual": [0.01, -0.02, 0.0],
        "q0.1": [-0.03] * 3,
        "q0.5": [0.0] * 3,
        "q0.9": [0.03] * 3,
    }
    return {
        "symbol": symbol,
        "epochs": epochs,
        "best_epoch": best,
        "stop_reason": "early_stopping",
        "training_seconds": 12.0,
        "test": {"h1": _horizon(skills[0]), "h5": _horizon(skills[1], coverage=0.4)},
        "test_forecasts": {
            "anchor_dates": ["2022-01-03", "2022-01-04", "2022-01-05"],
            "anchor_close": [1.0, 1.0, 1.0],
            "h1": series,
            "h5": series,
        },
    }


@pytest.fixture
def registry(tmp_path):
    registry = ModelRegistry(tmp_path / "models")
    for symbol, skills, val in [
        ("GOOD", (0.05, 0.02), [1.0, 0.9, 0.8]),
        ("BAD", (-0.10, -0.20), [1.0, 1.1, 1.2]),
    ]:
        registry.save(
            symbol, b"w", {"symbol": symbol, "version": "v"}, _metrics(symbol, skills, val)
        )
    return registry


def test_rows_are_ranked_by_skill_and_flagged(registry):
    review = build_review(registry)
    h1 = review["horizons"]["h1"]
    assert [row["symbol"] for row in h1] == ["GOOD", "BAD"]
    bad = h1[1]
    assert {"worse_than_random_walk", "stopped_at_epoch_1", "val_loss_rising"} <= set(bad["flags"])
    assert h1[0]["flags"] == []
    assert "miscalibrated" in review["horizons"]["h5"][0]["flags"]
    assert review["overview"]["h1"]["beat_random_walk"] == 1
    assert review["flagged"] == ["BAD", "GOOD"]  # GOOD is miscalibrated at h5


def test_diverged_run_is_flagged():
    metrics = _metrics("X", (0.0, 0.0), [1.0, 0.5])
    metrics["epochs"][1]["val_loss"] = None
    assert "diverged" in training_flags(metrics)


def test_cli_prints_tables_writes_plots_and_json(registry, tmp_path, capsys):
    out = tmp_path / "review"
    assert review_main(["--models-dir", str(registry.root), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "GOOD" in printed and "worse_than_random_walk" in printed
    assert (out / "GOOD_learning_curves.png").stat().st_size > 1000
    assert (out / "BAD_test_forecasts.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "review.json").read_text())["symbols"] == 2


def test_cli_json_mode_and_empty_dir(registry, tmp_path, capsys):
    assert (
        review_main(
            [
                "--models-dir",
                str(registry.root),
                "--json",
                "--no-plots",
                "--out",
                str(tmp_path / "r"),
            ]
        )
        == 0
    )
    assert json.loads(capsys.readouterr().out)["horizons"]["h5"][0]["symbol"] == "GOOD"
    assert review_main(["--models-dir", str(tmp_path / "empty")]) == 1
    assert "no trained models" in capsys.readouterr().err


def test_a_tail_quantile_off_its_level_is_miscalibrated_even_with_a_good_band():
    test = _horizon(0.0)
    assert not is_miscalibrated(test)
    test["coverage"] = {"0.1": 0.25, "0.5": 0.5, "0.9": 0.95}  # band still covers 0.70
    test["interval_coverage"] = 0.70
    assert is_miscalibrated(test)


def test_cli_says_when_no_backtest_exists_and_shows_one_when_published(registry, tmp_path, capsys):
    args = ["--models-dir", str(registry.root), "--no-plots", "--out", str(tmp_path / "r")]
    assert review_main(args) == 0
    assert "no walk-forward backtest published" in capsys.readouterr().out

    figures = {
        "n": 1000,
        "mae_skill": 0.01,
        "dm_mae_pvalue": 0.01,
        "pinball_skill": 0.02,
        "dm_pinball_pvalue": 0.2,
        "band_coverage": 0.8,
        "significantly_better": True,
        "significantly_worse": False,
        "beats_baseline": True,
    }
    registry.save_backtest(
        {
            "model": "mamba",
            "years": [2018, 2022],
            "command": "python scripts/backtest.py --symbols GOOD",
            "symbols": {"GOOD": {"h1": figures}},
        }
    )
    assert review_main(args) == 0
    printed = capsys.readouterr().out
    assert "walk-forward 2018-2022, horizon 1: 1/1 beat the baseline" in printed
    assert "no walk-forward backtest published" not in printed


def test_cli_reviews_only_the_symbols_of_a_list_or_a_prices_file(registry, tmp_path):
    out = tmp_path / "review"
    args = ["--models-dir", str(registry.root), "--out", str(out), "--no-plots"]
    assert review_main([*args, "--symbols", "good"]) == 0
    assert json.loads((out / "review.json").read_text())["symbols"] == 1
    prices = tmp_path / "mine.csv"
    prices.write_text("date,BAD,OTHER\n2022-01-03,1,2\n2022-01-04,1.1,2.1\n")
    assert review_main([*args, "--prices", str(prices)]) == 0
    review = json.loads((out / "review.json").read_text())
    assert review["symbols"] == 1 and review["horizons"]["h1"][0]["symbol"] == "BAD"
    prices.write_text("date,BAD\n2022-01-03,-1\n2022-01-04,1\n")
    assert review_main([*args, "--prices", str(prices)]) == 2
