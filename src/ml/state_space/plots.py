"""PNG plots for the metrics review: learning curves and test-segment forecasts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd

from ml.state_space.atomic import atomic_write


def _save(figure: plt.Figure, path: Path) -> Path:
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=110))
    plt.close(figure)
    return path


def plot_learning_curves(metrics: dict[str, Any], path: Path) -> Path:
    """Train/validation loss per epoch, the best epoch marked, learning rate below."""
    epochs = pd.DataFrame(metrics["epochs"])
    figure, (loss_axis, lr_axis) = plt.subplots(
        2, 1, figsize=(7, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    loss_axis.plot(epochs["epoch"], epochs["loss"], label="train")
    loss_axis.plot(epochs["epoch"], epochs["val_loss"], label="validation")
    if metrics.get("best_epoch"):
        loss_axis.axvline(metrics["best_epoch"], color="grey", linestyle=":", label="best epoch")
    loss_axis.set_ylabel("pinball loss")
    loss_axis.set_title(f"{metrics['symbol']}: learning curves ({metrics['stop_reason']})")
    loss_axis.legend()
    lr_axis.semilogy(epochs["epoch"], epochs["learning_rate"], color="tab:green")
    lr_axis.set_ylabel("learning rate")
    lr_axis.set_xlabel("epoch")
    figure.tight_layout()
    return _save(figure, path)


def plot_test_forecasts(metrics: dict[str, Any], path: Path) -> Path:
    """Predicted 10-90% band and median vs realised log return, one panel per horizon."""
    table = metrics["test_forecasts"]
    dates = pd.to_datetime(table["anchor_dates"])
    horizons = sorted((key for key in table if key.startswith("h")), key=lambda k: int(k[1:]))
    figure, axes = plt.subplots(
        len(horizons), 1, figsize=(9, 2.4 * len(horizons)), sharex=True, squeeze=False
    )
    for axis, key in zip(axes[:, 0], horizons, strict=True):
        series = table[key]
        quantile_keys = sorted(k for k in series if k.startswith("q"))
        axis.fill_between(
            dates, series[quantile_keys[0]], series[quantile_keys[-1]], alpha=0.3, label="10-90%"
        )
        axis.plot(dates, series["q0.5"], linewidth=0.8, label="median")
        axis.plot(dates, series["actual"], linewidth=0.6, color="black", label="actual")
        skill = metrics["test"][key]["skill_vs_random_walk"]
        axis.set_title(f"{key}: skill vs random walk {skill or 0.0:+.3f}", fontsize=9)
        axis.set_ylabel("log return")
    axes[0, 0].legend(loc="upper left", fontsize=8)
    figure.suptitle(f"{metrics['symbol']}: test-segment forecasts")
    figure.tight_layout()
    return _save(figure, path)
