"""What quants judge a ranking by: daily cross-sectional IC, quintile spread, per sector.

For each model and horizon h, on every origin date:

- **IC**: the Spearman rank correlation across symbols (at least :data:`MIN_IC_NAMES`) of
  the forecast median (``q0.5``) with the realised h-day log return; its mean over dates, a
  Newey-West t-statistic (Bartlett weights, h-1 lags: h-day outcomes of consecutive
  origins overlap);
- **quintile spread**: the mean realised simple h-day return of the top fifth of symbols
  by ``q0.5`` minus that of the bottom fifth (dates with at least
  :data:`MIN_QUINTILE_NAMES` symbols); mean over dates and Newey-West t-statistic;
- **per sector**: the same IC within each GICS sector (dates with at least
  :data:`MIN_SECTOR_NAMES` of its symbols), so a ranking that only sorts sectors shows.

A model whose median is the same for every symbol (the random walk) ranks nothing: its
IC and spread are NaN, not 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ml.state_space.significance import long_run_variance

__all__ = [
    "MIN_IC_NAMES",
    "MIN_QUINTILE_NAMES",
    "cross_section_table",
    "daily_ic",
    "daily_quintile_spread",
    "newey_west_t",
    "sector_table",
]

MIN_IC_NAMES = 3
MIN_QUINTILE_NAMES = 10
MIN_SECTOR_NAMES = 5
QUANTILE_GROUPS = 5


def newey_west_t(series: np.ndarray, lags: int) -> float:
    """Mean / Newey-West standard error of the mean (Bartlett weights, ``lags`` lags)."""
    series = series[np.isfinite(series)]
    if series.size < 2:
        return math.nan
    variance = long_run_variance(series, lags, bartlett=True)
    return float(series.mean() / math.sqrt(variance / series.size)) if variance > 0 else math.nan


def _ranks_by_date(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame.groupby("origin_date")[column].rank(method="average")


def _ranked_dates(windows: pd.DataFrame, min_names: int) -> pd.DataFrame:
    """The rows of dates with ``min_names`` symbols and a median that differs across them."""
    by_date = windows.groupby("origin_date")
    counts = by_date["symbol"].transform("size")
    median = by_date["q0.5"]  # max - min as np.ptp, NaN if any is, by the fast path
    spread = median.transform("max", skipna=False) - median.transform("min", skipna=False)
    return windows[(counts >= min_names) & (spread > 0)]


def daily_ic(windows: pd.DataFrame, min_names: int = MIN_IC_NAMES) -> pd.Series:
    """Per origin date (sorted): Spearman IC of ``q0.5`` with ``actual`` across symbols."""
    usable = _ranked_dates(windows, min_names)
    if usable.empty:
        return pd.Series(dtype="float64")
    ranked = pd.DataFrame(
        {
            "origin_date": usable["origin_date"],
            "forecast": _ranks_by_date(usable, "q0.5"),
            "outcome": _ranks_by_date(usable, "actual"),
        }
    )
    grouped = ranked.groupby("origin_date")
    return grouped[["forecast", "outcome"]].corr().xs("forecast", level=1)["outcome"].sort_index()


def daily_quintile_spread(
    windows: pd.DataFrame, min_names: int = MIN_QUINTILE_NAMES
) -> pd.Series:
    """Per origin date: top-fifth minus bottom-fifth mean realised simple return."""
    usable = _ranked_dates(windows, min_names)
    if usable.empty:
        return pd.Series(dtype="float64")
    share = usable.groupby("origin_date")["q0.5"].rank(method="first", pct=True)
    group = np.minimum(np.ceil(share * QUANTILE_GROUPS), QUANTILE_GROUPS)
    simple = np.expm1(usable["actual"])
    top = simple[group == QUANTILE_GROUPS].groupby(usable["origin_date"]).mean()
    bottom = simple[group == 1].groupby(usable["origin_date"]).mean()
    return (top - bottom).dropna().sort_index()


def cross_section_table(forecasts: pd.DataFrame) -> pd.DataFrame:
    """Per model x horizon: dates, mean IC and its t, mean quintile spread and its t."""
    rows = []
    for (model, horizon), windows in forecasts.groupby(["model", "horizon"], sort=True):
        ic = daily_ic(windows).to_numpy()
        spread = daily_quintile_spread(windows).to_numpy()
        lags = int(horizon) - 1
        rows.append(
            {
                "model": model,
                "horizon": int(horizon),
                "dates": int(ic.size),
                "mean_ic": float(ic.mean()) if ic.size else math.nan,
                "ic_t": newey_west_t(ic, lags),
                "quintile_spread": float(spread.mean()) if spread.size else math.nan,
                "quintile_spread_t": newey_west_t(spread, lags),
            }
        )
    return pd.DataFrame(rows)


def sector_table(forecasts: pd.DataFrame, sectors: Mapping[str, str]) -> pd.DataFrame:
    """Per model x horizon x sector: the within-sector mean IC, its t and its dates."""
    known = forecasts[forecasts["symbol"].isin(list(sectors))]
    known = known.assign(sector=known["symbol"].map(sectors))
    rows = []
    for (model, horizon, sector), windows in known.groupby(
        ["model", "horizon", "sector"], sort=True
    ):
        ic = daily_ic(windows, MIN_SECTOR_NAMES).to_numpy()
        if ic.size:
            rows.append(
                {
                    "model": model,
                    "horizon": int(horizon),
                    "sector": sector,
                    "symbols": int(windows["symbol"].nunique()),
                    "dates": int(ic.size),
                    "mean_ic": float(ic.mean()),
                    "ic_t": newey_west_t(ic, int(horizon) - 1),
                }
            )
    return pd.DataFrame(rows)
