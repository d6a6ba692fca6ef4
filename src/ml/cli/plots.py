"""PNG plots for the CLIs: learning curves, test forecasts, backtest skill, reliability."""

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


def plot_skill_by_year(fold_summary: pd.DataFrame, path: Path) -> Path:
    """Median MAE and pinball skill over symbols per test year: one row of panels
    per measure, one panel per horizon, one line per model."""
    horizons = sorted(fold_summary["horizon"].unique())
    measures = {"median_mae_skill": "MAE skill", "median_pinball_skill": "pinball skill"}
    figure, axes = plt.subplots(
        len(measures),
        len(horizons),
        figsize=(3.2 * len(horizons), 5.5),
        sharex=True,
        squeeze=False,
    )
    for row, (column, label) in enumerate(measures.items()):
        for axis, horizon in zip(axes[row], horizons, strict=True):
            at_horizon = fold_summary[fold_summary["horizon"] == horizon]
            for model, lines in at_horizon.groupby("model", sort=True):
                axis.plot(lines["fold"], lines[column], marker="o", markersize=3, label=model)
            axis.axhline(0.0, color="black", linewidth=0.7)
            axis.set_title(f"h{horizon}: {label}", fontsize=9)
            axis.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7)
    figure.suptitle("Median skill vs the random walk, per test year")
    figure.tight_layout()
    return _save(figure, path)


def plot_reliability(forecasts: pd.DataFrame, path: Path) -> Path:
    """Observed coverage of each quantile against its level, per horizon and model;
    a calibrated forecast lies on the diagonal."""
    levels = sorted(float(c[1:]) for c in forecasts.columns if c.startswith("q"))
    horizons = sorted(forecasts["horizon"].unique())
    figure, axes = plt.subplots(1, len(horizons), figsize=(3.2 * len(horizons), 3.4), squeeze=False)
    for axis, horizon in zip(axes[0], horizons, strict=True):
        at_horizon = forecasts[forecasts["horizon"] == horizon]
        for model, rows in at_horizon.groupby("model", sort=True):
            observed = [float((rows["actual"] <= rows[f"q{q:g}"]).mean()) for q in levels]
            axis.plot(levels, observed, marker="o", markersize=3, label=model)
        axis.plot([0, 1], [0, 1], color="black", linewidth=0.7, linestyle=":")
        axis.set_title(f"h{horizon}", fontsize=9)
        axis.set_xlabel("quantile level", fontsize=8)
        axis.tick_params(labelsize=7)
    axes[0, 0].set_ylabel("share of outcomes below")
    axes[0, 0].legend(fontsize=7)
    figure.suptitle("Reliability of the quantiles")
    figure.tight_layout()
    return _save(figure, path)
