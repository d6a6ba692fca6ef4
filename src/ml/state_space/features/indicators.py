"""Technical indicators on ``pd.Series`` that reproduce TA-Lib's defaults.

Every function returns series aligned with its input, NaN during the indicator's
warm-up and equal to TA-Lib's output (to floating-point rounding) from TA-Lib's
first valid index on. TA-Lib's seeding is reproduced exactly rather than
approximated, so no extra convergence window is needed for the comparison:

====================  ===========================  ====================================
function              first valid index (0-based)  seed
====================  ===========================  ====================================
``sma(c, n)``         ``n - 1``                    --
``ema(c, n)``         ``n - 1``                    SMA of the first ``n`` values
``rsi(c, n)``         ``n``                        mean gain/loss of the first ``n`` diffs
``macd(c, f, s, g)``  ``s + g - 2`` (33)           fast EMA seeded on ``c[s-f:s]``
``bollinger(c, n)``   ``n - 1``                    --
====================  ===========================  ====================================

Leading NaNs are skipped like TA-Lib's Python wrapper does (the indices above
then count from the first valid value); inputs must have no interior NaNs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["bollinger", "ema", "macd", "rolling_std", "rsi", "sma"]

# TA-Lib's TA_IS_ZERO threshold: RSI is reported as 0 when gains + losses fall below it.
_TALIB_ZERO = 1e-8


def _check_period(n: int, name: str = "n") -> None:
    if not isinstance(n, int | np.integer) or n < 1:
        raise ValueError(f"{name}={n!r} must be a positive integer period")


def _seeded_ewm(x: pd.Series, n: int, alpha: float, start: int | None = None) -> pd.Series:
    """Recursive EMA (``alpha``) whose value at position ``start`` is the mean of the ``n``
    values ending there (TA-Lib seeding); ``start`` defaults to ``n - 1`` after leading NaNs."""
    values = x.to_numpy(dtype=np.float64)
    out = np.full(len(values), np.nan)
    valid = np.flatnonzero(~np.isnan(values))
    offset = int(valid[0]) if len(valid) else len(values)
    start = offset + (n - 1 if start is None else start)
    if start < len(values):
        tail = values[start:].copy()
        tail[0] = values[start - n + 1 : start + 1].mean()
        out[start:] = pd.Series(tail).ewm(alpha=alpha, adjust=False).mean().to_numpy()
    return pd.Series(out, index=x.index, name=x.name)


def rolling_std(x: pd.Series, n: int, ddof: int = 0) -> pd.Series:
    """Rolling standard deviation over ``n`` rows, computed window by window.

    Unlike pandas' online ``rolling().std()``, a constant window gives exactly 0 and a value
    never depends on rows outside its window (so a tail of the history gives identical values).
    """
    _check_period(n)
    values = x.to_numpy(dtype=np.float64)
    out = np.full(len(values), np.nan)
    if len(values) >= n and n > ddof:
        windows = np.lib.stride_tricks.sliding_window_view(values, n)  # (T - n + 1, n)
        out[n - 1 :] = windows.std(axis=1, ddof=ddof)
    return pd.Series(out, index=x.index, name=x.name)


def sma(close: pd.Series, n: int) -> pd.Series:
    """Simple moving average over ``n`` rows (TA-Lib ``SMA``)."""
    _check_period(n)
    return close.rolling(n).mean()


def ema(close: pd.Series, n: int) -> pd.Series:
    """EMA with ``alpha = 2 / (n + 1)``, seeded with the SMA of the first ``n`` (TA-Lib ``EMA``)."""
    _check_period(n)
    return _seeded_ewm(close, n, 2.0 / (n + 1))


def rsi(close: pd.Series, n: int = 14) -> pd.Series:
    """Relative strength index in [0, 100] with Wilder smoothing ``alpha = 1 / n`` (TA-Lib ``RSI``).

    Like TA-Lib, reports 0 when the average gain plus loss is below 1e-8 (a flat history).
    """
    _check_period(n)
    delta = close.diff()
    gain = _seeded_ewm(delta.clip(lower=0.0), n, 1.0 / n).to_numpy()
    loss = _seeded_ewm((-delta).clip(lower=0.0), n, 1.0 / n).to_numpy()
    total = gain + loss
    flat = total < _TALIB_ZERO  # False during the warm-up (NaN)
    value = 100.0 * gain / np.where(flat, 1.0, total)
    value[flat] = 0.0
    return pd.Series(value, index=close.index, name=close.name)


def macd(
    close: pd.Series, fast: int = 12, slow: int = 26, signal: int = 9
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """MACD line, signal line and histogram (TA-Lib ``MACD``).

    As in TA-Lib, the fast EMA starts where the slow one does (seeded on the ``fast`` values
    ending at row ``slow - 1``), and all three outputs start where the signal line does.
    """
    for value, name in ((fast, "fast"), (slow, "slow"), (signal, "signal")):
        _check_period(value, name)
    if fast > slow:  # TA-Lib swaps them too
        fast, slow = slow, fast
    fast_ema = _seeded_ewm(close, fast, 2.0 / (fast + 1), start=slow - 1)
    line = fast_ema - ema(close, slow)
    signal_line = _seeded_ewm(line, signal, 2.0 / (signal + 1))
    line = line.where(signal_line.notna())
    return line, signal_line, line - signal_line


def bollinger(
    close: pd.Series, n: int = 20, k: float = 2.0
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Bollinger bands ``(mid, upper, lower)``: SMA ± ``k`` population std (TA-Lib ``BBANDS``)."""
    _check_period(n)
    mid = sma(close, n)
    width = k * rolling_std(close, n)
    return mid, mid + width, mid - width
