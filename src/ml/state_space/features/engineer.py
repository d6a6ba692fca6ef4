"""Scale-free model inputs from a daily price frame.

``TimeSeriesFeatureEngineer`` turns a frame with a ``close`` column (and optionally
``open, high, low, volume``) into float32 features that do not depend on the price
level. Each formula is documented in ``docs/FEATURES.md``. The feature list depends only
on two flags (``use_ohlc``, ``use_volume``), resolved from the training frame and stored
with the model through ``to_dict``/``from_dict`` so serving computes the same columns.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd

from ml.state_space.features import indicators as ind

__all__ = ["TimeSeriesFeatureEngineer", "feature_names_for"]

logger = logging.getLogger(__name__)

MA_WINDOWS = (5, 10, 20, 60)
RETURN_LAGS = (1, 5, 10, 20)
ROC_LAG = 60
RANGE_WINDOWS = (20, 60)
RANGE_VOL_WINDOWS = (5, 20, 60)  # Garman-Klass volatility windows
RSI_N = 14
MACD_FAST, MACD_SLOW, MACD_SIGNAL = 12, 26, 9
BB_N, BB_K = 20, 2.0
VOL_FLOOR = 1e-4  # daily log-return volatility floor (keeps ratios finite on flat prices)
VOLUME_STD_FLOOR = 1e-3  # std floor of 20-day log volume for the z-score
EMA_TOLERANCE = 1e-6  # residual weight of an EMA's seed once the warm-up is over

CLOSE_FEATURES: tuple[str, ...] = (
    *(f"ret_{k}" for k in RETURN_LAGS),
    f"roc_{ROC_LAG}",
    *(f"sma_ratio_{n}" for n in MA_WINDOWS),
    *(f"ema_ratio_{n}" for n in MA_WINDOWS),
    "sma_trend_20_60",
    "vol_5",
    "vol_20",
    "vol_ratio_5_20",
    "mom_5",
    "mom_20",
    f"rsi_{RSI_N}",
    f"bb_pctb_{BB_N}",
    f"bb_width_{BB_N}",
    *(f"range_pos_{n}" for n in RANGE_WINDOWS),
    "macd",
    "macd_signal",
    "macd_hist",
)
OHLC_FEATURES: tuple[str, ...] = (
    "hl_range",
    "oc_body",
    "gap",
    "upper_shadow",
    "lower_shadow",
    "parkinson_vol_20",
    *(f"gk_vol_{n}" for n in RANGE_VOL_WINDOWS),
    "rs_vol_20",
)
VOLUME_FEATURES: tuple[str, ...] = ("volume_ratio_20", "volume_z_20", "volume_trend_5_20")
OHLC_COLUMNS = ("open", "high", "low")


def feature_names_for(use_ohlc: bool, use_volume: bool) -> list[str]:
    """The deterministic, ordered feature list for a pair of flags."""
    return [
        *CLOSE_FEATURES,
        *(OHLC_FEATURES if use_ohlc else ()),
        *(VOLUME_FEATURES if use_volume else ()),
    ]


def _ema_warmup(tolerance: float) -> int:
    """Rows until every EMA-type component has forgotten its seed down to ``tolerance``."""
    components = [(n - 1, 2.0 / (n + 1)) for n in MA_WINDOWS]  # (first valid row, alpha)
    components += [
        (RSI_N, 1.0 / RSI_N),
        (MACD_SLOW - 1, 2.0 / (MACD_SLOW + 1)),
        (MACD_SLOW - 1, 2.0 / (MACD_FAST + 1)),
        (MACD_SLOW + MACD_SIGNAL - 2, 2.0 / (MACD_SIGNAL + 1)),
    ]
    return max(start + math.ceil(math.log(tolerance) / math.log1p(-a)) for start, a in components)


def _safe_div(num: np.ndarray, den: np.ndarray, fill: float) -> np.ndarray:
    """``num / den`` where ``den > 0``, else ``fill`` (NaN inputs stay NaN)."""
    out = np.divide(num, den, out=np.full_like(num, fill), where=den > 0)
    return np.where(np.isnan(num) | np.isnan(den), np.nan, out)


def _positive(prices: pd.DataFrame, column: str) -> np.ndarray:
    values = prices[column].to_numpy(dtype=np.float64)
    bad = ~(np.isfinite(values) & (values > 0))
    if bad.any():
        first = prices.index[int(np.argmax(bad))]
        raise ValueError(
            f"column {column!r} has {int(bad.sum())} non-positive or missing values "
            f"(first at {first}, value {values[bad][0]!r}); clean the price data first"
        )
    return values


class TimeSeriesFeatureEngineer:
    """Price frame -> float32 feature frame (warm-up rows dropped, all values finite).

    ``use_ohlc``/``use_volume`` = None means "use the columns when the frame has them";
    ``resolve(prices)`` fixes them for storage. ``warmup`` rows of history are consumed
    before the first feature row; rows computed from a history tail of at least
    ``warmup + k`` rows equal those of the full history (within ``EMA_TOLERANCE``).
    """

    warmup: int = max(max(MA_WINDOWS + RANGE_WINDOWS), ROC_LAG, _ema_warmup(EMA_TOLERANCE))

    def __init__(self, use_ohlc: bool | None = None, use_volume: bool | None = None) -> None:
        self.use_ohlc = use_ohlc
        self.use_volume = use_volume

    def __repr__(self) -> str:
        return f"TimeSeriesFeatureEngineer(use_ohlc={self.use_ohlc}, use_volume={self.use_volume})"

    def resolve(self, prices: pd.DataFrame) -> TimeSeriesFeatureEngineer:
        """A copy with both flags fixed: auto flags follow the columns present in ``prices``."""
        has_ohlc = all(c in prices.columns for c in OHLC_COLUMNS)
        has_volume = "volume" in prices.columns and bool((prices["volume"] > 0).any())
        return TimeSeriesFeatureEngineer(
            has_ohlc if self.use_ohlc is None else self.use_ohlc,
            has_volume if self.use_volume is None else self.use_volume,
        )

    def feature_names(self, prices: pd.DataFrame | None = None) -> list[str]:
        """Ordered feature names (``prices`` is needed only while a flag is still auto)."""
        engineer = self
        if self.use_ohlc is None or self.use_volume is None:
            if prices is None:
                raise ValueError(f"{self!r} has auto flags: pass prices or call resolve() first")
            engineer = self.resolve(prices)
        return feature_names_for(bool(engineer.use_ohlc), bool(engineer.use_volume))

    def history_rows(self, seq_len: int) -> int:
        """Tail length of price history that yields the last ``seq_len`` feature rows."""
        return self.warmup + seq_len

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly config (flags must be resolved) stored with a model."""
        if self.use_ohlc is None or self.use_volume is None:
            raise ValueError(f"{self!r} has auto flags: call resolve(prices) before storing it")
        return {
            "use_ohlc": self.use_ohlc,
            "use_volume": self.use_volume,
            "warmup": self.warmup,
            "feature_names": self.feature_names(),
        }

    @classmethod
    def from_dict(cls, config: dict[str, Any]) -> TimeSeriesFeatureEngineer:
        """Rebuild a stored engineer; refuses a config whose features this code can't reproduce."""
        engineer = cls(bool(config["use_ohlc"]), bool(config["use_volume"]))
        stored = list(config.get("feature_names", engineer.feature_names()))
        if stored != engineer.feature_names() or config.get("warmup", cls.warmup) != cls.warmup:
            raise ValueError(
                f"stored feature config (warmup={config.get('warmup')}, features={stored}) differs "
                f"from this version's (warmup={cls.warmup}, features={engineer.feature_names()}); "
                "retrain the model with the current feature code"
            )
        return engineer

    def transform(self, prices: pd.DataFrame) -> pd.DataFrame:
        """Features for every row after the warm-up, float32, same index as ``prices[warmup:]``."""
        engineer = self.resolve(prices)
        if "close" not in prices.columns:
            raise ValueError(f"prices need a 'close' column, got columns {list(prices.columns)}")
        if len(prices) <= self.warmup:
            raise ValueError(
                f"need more than warmup={self.warmup} rows of prices to compute features, "
                f"got {len(prices)}; load a longer history"
            )
        if not prices.index.is_monotonic_increasing:
            raise ValueError("prices index must be sorted in increasing date order")
        needed = [*(OHLC_COLUMNS if engineer.use_ohlc else ()), *(["volume"] * engineer.use_volume)]
        missing = [c for c in needed if c not in prices.columns]
        if missing:
            raise ValueError(
                f"{engineer!r} needs columns {missing} that the frame lacks "
                f"(has {list(prices.columns)}); pass full OHLCV data or use the matching config"
            )
        close = _positive(prices, "close")
        columns = _close_features(close)
        if engineer.use_ohlc:
            columns |= _ohlc_features(close, *(_positive(prices, c) for c in OHLC_COLUMNS))
        if engineer.use_volume:
            columns |= _volume_features(prices["volume"].to_numpy(dtype=np.float64))
        names = engineer.feature_names()
        values = np.column_stack([columns[name] for name in names])[self.warmup :]
        bad = ~np.isfinite(values)
        if bad.any():
            cols = sorted({names[j] for j in np.nonzero(bad)[1]})
            raise ValueError(f"non-finite features {cols}; check the input prices for outliers")
        logger.debug("computed %d features on %d rows", len(names), len(values))
        index = prices.index[self.warmup :]
        return pd.DataFrame(values.astype(np.float32), index=index, columns=names)


def _close_features(close: np.ndarray) -> dict[str, np.ndarray]:
    """Features computed from the close alone, keyed by name."""
    c = pd.Series(close)
    logc = np.log(close)
    out: dict[str, np.ndarray] = {}
    for k in RETURN_LAGS:
        out[f"ret_{k}"] = _lag_diff(logc, k)
    out[f"roc_{ROC_LAG}"] = np.expm1(_lag_diff(logc, ROC_LAG))
    sma = {n: ind.sma(c, n).to_numpy() for n in MA_WINDOWS}
    for n in MA_WINDOWS:
        out[f"sma_ratio_{n}"] = logc - np.log(sma[n])
        out[f"ema_ratio_{n}"] = logc - np.log(ind.ema(c, n).to_numpy())
    out["sma_trend_20_60"] = np.log(sma[20] / sma[60])
    r1 = pd.Series(out["ret_1"])
    vol5 = ind.rolling_std(r1, 5, ddof=1).to_numpy()
    vol20 = ind.rolling_std(r1, 20, ddof=1).to_numpy()
    out["vol_5"], out["vol_20"] = vol5, vol20
    out["vol_ratio_5_20"] = np.log((vol5 + VOL_FLOOR) / (vol20 + VOL_FLOOR))
    out["mom_5"] = out["ret_5"] / (vol20 * np.sqrt(5) + VOL_FLOOR)
    out["mom_20"] = out["ret_20"] / (vol20 * np.sqrt(20) + VOL_FLOOR)
    out[f"rsi_{RSI_N}"] = ind.rsi(c, RSI_N).to_numpy() / 50.0 - 1.0
    mid, upper, lower = (s.to_numpy() for s in ind.bollinger(c, BB_N, BB_K))
    out[f"bb_pctb_{BB_N}"] = _safe_div(close - lower, upper - lower, 0.5)
    out[f"bb_width_{BB_N}"] = (upper - lower) / mid
    for n in RANGE_WINDOWS:
        out[f"range_pos_{n}"] = _range_position(close, c.rolling(n).max(), c.rolling(n).min())
    macd = ind.macd(c, MACD_FAST, MACD_SLOW, MACD_SIGNAL)
    for name, series in zip(("macd", "macd_signal", "macd_hist"), macd, strict=True):
        out[name] = series.to_numpy() / close
    return out


def _lag_diff(x: np.ndarray, k: int) -> np.ndarray:
    """``x[t] - x[t - k]`` (NaN for the first ``k`` rows)."""
    out = np.full_like(x, np.nan)
    out[k:] = x[k:] - x[:-k]
    return out


def _range_position(close: np.ndarray, high: pd.Series, low: pd.Series) -> np.ndarray:
    """Close's position in the rolling [low, high] range mapped to [-1, 1] (0 if flat)."""
    hi, lo = high.to_numpy(), low.to_numpy()
    return 2.0 * _safe_div(close - lo, hi - lo, 0.5) - 1.0


def _ohlc_features(
    close: np.ndarray, open_: np.ndarray, high: np.ndarray, low: np.ndarray
) -> dict[str, np.ndarray]:
    """Intraday features; also redefines the range positions on rolling high/low."""
    hl = np.log(high / low)
    gap = np.full_like(close, np.nan)
    gap[1:] = np.log(open_[1:] / close[:-1])
    out = {
        "hl_range": hl,
        "oc_body": np.log(close / open_),
        "gap": gap,
        "upper_shadow": np.log(high / np.maximum(open_, close)),
        "lower_shadow": np.log(np.minimum(open_, close) / low),
        "parkinson_vol_20": np.sqrt(_rolling_mean(hl**2, 20) / (4.0 * np.log(2.0))),
        "rs_vol_20": np.sqrt(_rolling_mean(_rogers_satchell(close, open_, high, low), 20)),
    }
    garman_klass = 0.5 * hl**2 - (2.0 * np.log(2.0) - 1.0) * np.log(close / open_) ** 2
    for n in RANGE_VOL_WINDOWS:
        out[f"gk_vol_{n}"] = np.sqrt(np.maximum(_rolling_mean(garman_klass, n), 0.0))
    h, lo = pd.Series(high), pd.Series(low)
    for n in RANGE_WINDOWS:
        out[f"range_pos_{n}"] = _range_position(close, h.rolling(n).max(), lo.rolling(n).min())
    return out


def _rolling_mean(x: np.ndarray, n: int) -> np.ndarray:
    return pd.Series(x).rolling(n).mean().to_numpy()


def _rogers_satchell(
    close: np.ndarray, open_: np.ndarray, high: np.ndarray, low: np.ndarray
) -> np.ndarray:
    """The daily Rogers-Satchell variance ``ln(h/c) ln(h/o) + ln(l/c) ln(l/o)``, floored at 0
    (it is >= 0 whenever the bar is consistent: low <= open, close <= high)."""
    h, lo = np.log(high), np.log(low)
    c, o = np.log(close), np.log(open_)
    return np.maximum((h - c) * (h - o) + (lo - c) * (lo - o), 0.0)


def _volume_features(volume: np.ndarray) -> dict[str, np.ndarray]:
    """Volume features; zero/missing volume is carried forward, and rows without any
    usable volume in their window get the neutral value 0."""
    v = pd.Series(np.where(volume > 0, volume, np.nan)).ffill()
    logv = np.log(v)
    mean20 = v.rolling(20).mean().to_numpy()
    z_std = np.maximum(ind.rolling_std(logv, 20).to_numpy(), VOLUME_STD_FLOOR)
    out = {
        "volume_ratio_20": logv.to_numpy() - np.log(mean20),
        "volume_z_20": (logv - logv.rolling(20).mean()).to_numpy() / z_std,
        "volume_trend_5_20": np.log(v.rolling(5).mean().to_numpy() / mean20),
    }
    return {name: np.where(np.isnan(values), 0.0, values) for name, values in out.items()}
