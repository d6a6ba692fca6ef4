"""Score long-format forecasts against a baseline forecast of the same windows.

Input: one row per (model, symbol, fold, origin_date, horizon) with quantile
columns ``q<level>`` and the realised log return ``actual`` (the layout of a
backtest's ``forecasts.parquet``). Every model is joined with the baseline
model's rows on (symbol, fold, origin_date, horizon), so each number is
computed on exactly the windows the baseline was scored on.

Definitions (also in ``docs/EVALUATION.md``):

- ``mae_skill = 1 - MAE(model median) / MAE(baseline median)``;
- ``pinball_skill = 1 - mean pinball(model) / mean pinball(baseline)``, the
  pinball loss averaged over the quantile levels;
- ``dm_*``: Diebold-Mariano (HLN-corrected, HAC lag h-1) on the per-window
  losses in time order; ``significantly_better`` / ``significantly_worse``: the
  MAE test rejects at ``alpha`` with the model's loss lower / higher;
- ``coverage_q<level>``: share of outcomes at or below the quantile;
  ``band_coverage``: share inside the outermost quantiles;
  ``calibrated``: every quantile's coverage within ``calibration_tolerance``;
- ``beats_baseline``: significantly better on MAE; or significantly worse on
  neither MAE nor pinball loss, with both skills >= 0 and one of them > 0;
- ``ic``: Spearman correlation of the predicted median with the outcome.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from ml.state_space.evaluation.cross_section import daily_ic
from ml.state_space.evaluation.metrics import directional_accuracy
from ml.state_space.significance import diebold_mariano, long_run_variance

KEYS = ("symbol", "fold", "origin_date", "horizon")
BOOTSTRAP_REPLICATES = 200


def quantile_levels(columns: Iterable[str]) -> list[float]:
    """The sorted levels of the ``q<level>`` columns (``q0.1`` -> 0.1)."""
    levels = []
    for column in columns:
        if column.startswith("q"):
            try:
                levels.append(float(column[1:]))
            except ValueError:
                continue
    return sorted(levels)


def quantile_column(level: float) -> str:
    return f"q{level:g}"


def pinball_loss(actual: np.ndarray, quantiles: np.ndarray, levels: Sequence[float]) -> np.ndarray:
    """Per-window pinball loss averaged over the levels: ``actual (n,)``,
    ``quantiles (n, Q)`` -> ``(n,)``."""
    error = actual[:, None] - quantiles
    tau = np.asarray(levels, dtype=float)[None, :]
    return np.maximum(tau * error, (tau - 1.0) * error).mean(axis=1)


def score_forecasts(
    forecasts: pd.DataFrame,
    baseline: str = "rw",
    by: Sequence[str] = ("model", "symbol", "horizon"),
    alpha: float = 0.05,
    calibration_tolerance: float = 0.05,
) -> pd.DataFrame:
    """One row of scores per ``by`` group, every model next to ``baseline``."""
    paired = _pair_with_baseline(forecasts, baseline)
    levels = quantile_levels(forecasts.columns)
    rows = []
    for key, group in paired.groupby(list(by), sort=True):
        scores = _score_group(
            group.sort_values("origin_date"), levels, alpha, calibration_tolerance
        )
        rows.append({**dict(zip(by, key, strict=True)), **scores})
    return pd.DataFrame(rows)


def _pair_with_baseline(forecasts: pd.DataFrame, baseline: str) -> pd.DataFrame:
    if baseline not in set(forecasts["model"]):
        raise ValueError(f"baseline model {baseline!r} has no forecasts to compare with")
    levels = quantile_levels(forecasts.columns)
    columns = [quantile_column(level) for level in levels]
    reference = forecasts.loc[forecasts["model"] == baseline, [*KEYS, *columns]]
    reference = reference.rename(columns={c: f"base_{c}" for c in columns})
    return forecasts.merge(reference, on=list(KEYS), how="inner", validate="many_to_one")


def _score_group(
    group: pd.DataFrame, levels: list[float], alpha: float, tolerance: float
) -> dict[str, float | int | bool]:
    horizon = int(group["horizon"].iloc[0])
    columns = [quantile_column(level) for level in levels]
    actual = group["actual"].to_numpy(dtype=float)
    predicted = group[columns].to_numpy(dtype=float)
    reference = group[[f"base_{c}" for c in columns]].to_numpy(dtype=float)
    median = group["q0.5"].to_numpy(dtype=float)

    abs_error, base_abs_error = np.abs(actual - median), np.abs(actual - group["base_q0.5"])
    pinball, base_pinball = (
        pinball_loss(actual, predicted, levels),
        pinball_loss(actual, reference, levels),
    )
    dm_mae = diebold_mariano(abs_error, base_abs_error.to_numpy(), horizon)
    dm_pinball = diebold_mariano(pinball, base_pinball, horizon)
    coverage = {
        f"coverage_{c}": float(np.mean(actual <= predicted[:, i])) for i, c in enumerate(columns)
    }
    direction, always_up = directional_accuracy(actual, median)
    mae_skill = _skill(abs_error.mean(), base_abs_error.mean())
    pinball_skill = _skill(pinball.mean(), base_pinball.mean())
    better, worse = _verdict(dm_mae.pvalue, dm_mae.statistic, alpha)
    pinball_better, pinball_worse = _verdict(dm_pinball.pvalue, dm_pinball.statistic, alpha)
    return {
        "n": int(actual.size),
        "mae": float(abs_error.mean()),
        "mae_baseline": float(base_abs_error.mean()),
        "mae_skill": mae_skill,
        "dm_mae_stat": dm_mae.statistic,
        "dm_mae_pvalue": dm_mae.pvalue,
        "pinball": float(pinball.mean()),
        "pinball_baseline": float(base_pinball.mean()),
        "pinball_skill": pinball_skill,
        "dm_pinball_stat": dm_pinball.statistic,
        "dm_pinball_pvalue": dm_pinball.pvalue,
        **coverage,
        "band_coverage": float(np.mean((actual >= predicted[:, 0]) & (actual <= predicted[:, -1]))),
        "band_level": levels[-1] - levels[0],
        "max_calibration_error": max(
            abs(coverage[f"coverage_{c}"] - level) for c, level in zip(columns, levels, strict=True)
        ),
        "calibrated": all(
            abs(coverage[f"coverage_{c}"] - level) <= tolerance
            for c, level in zip(columns, levels, strict=True)
        ),
        "ic": spearman(median, actual),
        "directional_accuracy": _nan_if_none(direction),
        "always_up_accuracy": _nan_if_none(always_up),
        "significantly_better": better,
        "significantly_worse": worse,
        "pinball_significantly_better": pinball_better,
        "pinball_significantly_worse": pinball_worse,
        "beats_baseline": _beats(better, worse or pinball_worse, mae_skill, pinball_skill),
    }


def _verdict(pvalue: float, statistic: float, alpha: float) -> tuple[bool, bool]:
    """(significantly better, significantly worse) for a DM test of model - baseline."""
    significant = not math.isnan(pvalue) and pvalue < alpha
    return significant and statistic < 0, significant and statistic > 0


def _beats(better: bool, any_worse: bool, mae_skill: float, pinball_skill: float) -> bool:
    """Significantly better on MAE, or at least as good on both measures and not
    significantly worse on either (a tie with the baseline itself does not count)."""
    if better:
        return True
    skills = (mae_skill, pinball_skill)
    return not any_worse and min(skills) >= 0 and max(skills) > 0


def _skill(loss: float, baseline_loss: float) -> float:
    return float(1.0 - loss / baseline_loss) if baseline_loss > 0 else math.nan


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else value


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation; NaN when either side is constant or too short."""
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(stats.spearmanr(x, y).statistic)


def summarize(
    forecasts: pd.DataFrame, scores: pd.DataFrame, baseline: str = "rw", seed: int = 0
) -> pd.DataFrame:
    """Per model x horizon: how many symbols have skill, are significantly better
    or worse, how well calibrated, and the pooled and cross-sectional IC."""
    rows = []
    for (model, horizon), group in scores.groupby(["model", "horizon"], sort=True):
        windows = forecasts[(forecasts["model"] == model) & (forecasts["horizon"] == horizon)]
        pooled_ic, pooled_se = pooled_ic_with_se(windows, int(horizon), seed)
        cross_ic, cross_se = cross_sectional_ic(windows, int(horizon))
        coverage_columns = [c for c in group.columns if c.startswith("coverage_q")]
        rows.append(
            {
                "model": model,
                "horizon": int(horizon),
                "symbols": len(group),
                "windows": int(group["n"].sum()),
                "share_mae_skill_positive": float((group["mae_skill"] > 0).mean()),
                "median_mae_skill": float(group["mae_skill"].median()),
                "significantly_better": int(group["significantly_better"].sum()),
                "significantly_worse": int(group["significantly_worse"].sum()),
                "share_pinball_skill_positive": float((group["pinball_skill"] > 0).mean()),
                "median_pinball_skill": float(group["pinball_skill"].median()),
                "pinball_significantly_better": int(group["pinball_significantly_better"].sum()),
                "pinball_significantly_worse": int(group["pinball_significantly_worse"].sum()),
                "median_band_coverage": float(group["band_coverage"].median()),
                **{f"median_{c}": float(group[c].median()) for c in coverage_columns},
                "share_calibrated": float(group["calibrated"].mean()),
                "share_beats_baseline": float(group["beats_baseline"].mean()),
                "median_directional_accuracy": float(group["directional_accuracy"].median()),
                "median_always_up_accuracy": float(group["always_up_accuracy"].median()),
                "pooled_ic": pooled_ic,
                "pooled_ic_se": pooled_se,
                "cross_sectional_ic": cross_ic,
                "cross_sectional_ic_se": cross_se,
                "share_gate_passed": gate_passed(windows),
            }
        )
    return pd.DataFrame(rows)


def gate_passed(windows: pd.DataFrame) -> float:
    """The share of (symbol, fold) fits whose gate gave the model a share (``model_weight``
    > 0) of one model's windows at one horizon; NaN for a model without a gate."""
    if "model_weight" not in windows.columns:
        return math.nan
    weights = windows.groupby(["symbol", "fold"])["model_weight"].first().dropna()
    return float((weights > 0).mean()) if len(weights) else math.nan


def pooled_ic_with_se(windows: pd.DataFrame, horizon: int, seed: int = 0) -> tuple[float, float]:
    """Spearman IC over all (symbol, origin) windows, and its standard error from a
    moving-block bootstrap over origin dates (blocks of ``max(h, 20)`` dates keep
    the overlap of h-day windows and the cross-sectional correlation inside a block)."""
    ic = spearman(windows["q0.5"].to_numpy(), windows["actual"].to_numpy())
    if math.isnan(ic):
        return ic, math.nan
    dates = np.sort(windows["origin_date"].unique())
    block = max(horizon, 20)
    if dates.size < 2 * block:
        return ic, math.nan
    rows_by_date = windows.groupby("origin_date").indices
    positions = [rows_by_date[date] for date in dates]
    median, actual = (_dense_codes(windows[c].to_numpy()) for c in ("q0.5", "actual"))
    rng = np.random.default_rng(seed)
    starts_available = dates.size - block + 1
    blocks_needed = math.ceil(dates.size / block)
    replicates = []
    for _ in range(BOOTSTRAP_REPLICATES):
        starts = rng.integers(0, starts_available, blocks_needed)
        chosen = np.concatenate([positions[s + k] for s in starts for k in range(block)])
        replicates.append(_spearman_of_codes(median[chosen], actual[chosen]))
    return ic, float(np.nanstd(replicates, ddof=1))


def _dense_codes(values: np.ndarray) -> np.ndarray:
    """Each value's position among the distinct values (equal values, equal codes): any
    sample ranks its codes as it ranks its values."""
    return np.unique(values, return_inverse=True)[1]


def _spearman_of_codes(x: np.ndarray, y: np.ndarray) -> float:
    """:func:`spearman` of a sample of dense codes, its average ranks counted in O(n)
    (a bootstrap replicate of a pooled IC ranks half a million windows)."""
    rx, ry = _average_ranks(x), _average_ranks(y)
    if len(x) < 3 or np.ptp(rx) == 0 or np.ptp(ry) == 0:
        return math.nan
    return float(np.corrcoef(rx, ry)[0, 1])


def _average_ranks(codes: np.ndarray) -> np.ndarray:
    """1-based average ranks of integer codes (ties share the mean of their ranks)."""
    counts = np.bincount(codes)
    below = np.cumsum(counts) - counts
    return below[codes] + (counts[codes] + 1) / 2.0


def cross_sectional_ic(windows: pd.DataFrame, horizon: int) -> tuple[float, float]:
    """Mean over origin dates of the Spearman IC across symbols, with a HAC (lag
    h-1) standard error of that mean; NaN with fewer than 3 symbols per date."""
    daily = daily_ic(windows).to_numpy()
    daily = daily[np.isfinite(daily)]
    if daily.size < 2:
        return math.nan, math.nan
    variance = long_run_variance(daily, horizon - 1, bartlett=True)
    return float(daily.mean()), float(math.sqrt(max(variance, 0.0) / daily.size))


def summarize_by_fold(fold_scores: pd.DataFrame) -> pd.DataFrame:
    """Per model x horizon x fold (test year): median skills and coverage over symbols."""
    return (
        fold_scores.groupby(["model", "horizon", "fold"], sort=True)
        .agg(
            median_mae_skill=("mae_skill", "median"),
            median_pinball_skill=("pinball_skill", "median"),
            median_band_coverage=("band_coverage", "median"),
            symbols=("symbol", "nunique"),
        )
        .reset_index()
    )
