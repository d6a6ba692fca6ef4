import numpy as np
import pandas as pd

from ml.cli.plots import plot_reliability, plot_skill_by_year

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_backtest_plots_are_written_as_png(tmp_path):
    rng = np.random.default_rng(0)
    fold_summary = pd.DataFrame(
        [
            {
                "model": m,
                "horizon": h,
                "fold": y,
                "median_mae_skill": rng.normal(),
                "median_pinball_skill": rng.normal(),
                "median_band_coverage": 0.8,
                "symbols": 2,
            }
            for m in ("mamba", "rw")
            for h in (1, 5)
            for y in (2020, 2021)
        ]
    )
    actual = rng.normal(size=40)
    forecasts = pd.DataFrame(
        {
            "model": "rw",
            "horizon": np.repeat([1, 5], 20),
            "q0.1": -1.28,
            "q0.5": 0.0,
            "q0.9": 1.28,
            "actual": actual,
        }
    )
    for path in (
        plot_skill_by_year(fold_summary, tmp_path / "skill.png"),
        plot_reliability(forecasts, tmp_path / "reliability.png"),
    ):
        assert path.read_bytes().startswith(PNG_MAGIC)
