"""Cross-sectional context: where a symbol stands against the universe on each date.

``CrossSection.from_histories`` keeps, per date, the trailing k-day log returns of every
symbol of a universe (a dates x symbols panel built from each symbol's own rows), and
``features(prices, symbol)`` turns one symbol's prices into columns known at each of its
dates: the universe's equal-weight mean return, its cross-sectional dispersion, the
symbol's percentile rank of its own 5- and 20-day returns within the universe, and its
sector's mean 5-day return relative to the universe. Every value at date ``t`` uses
closes at dates ``<= t`` only. The symbol need not be a member: its rank is taken
against the members' returns, so an unseen symbol gets the same columns (its sector
column is NaN when its sector is unknown or has no member). Dates with fewer than
``min_members`` members give NaN, which LightGBM treats as missing. Formulas:
``docs/FEATURES.md``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ml.state_space.data.bundled import sectors as bundled_sectors

__all__ = ["CROSS_SECTION_FEATURES", "CrossSection"]

logger = logging.getLogger(__name__)

RANK_LAGS = (5, 20)
MEAN_LAGS = (1, 5, 20)
SECTOR_LAG = 5
MIN_MEMBERS = 10
LAGS = tuple(sorted({*RANK_LAGS, *MEAN_LAGS, SECTOR_LAG}))

CROSS_SECTION_FEATURES: tuple[str, ...] = (
    *(f"xs_mean_ret_{k}" for k in MEAN_LAGS),
    "xs_dispersion_5",
    *(f"xs_rank_{k}" for k in RANK_LAGS),
    f"xs_sector_ret_{SECTOR_LAG}",
)


def trailing_returns(close: pd.Series, lag: int) -> pd.Series:
    """``ln(c_t / c_{t-lag})`` over a symbol's own rows (NaN for the first ``lag``)."""
    log_close = np.log(close.astype(np.float64))
    return log_close - log_close.shift(lag)


@dataclass
class CrossSection:
    """A universe's context per date: ``market`` (dates x the mean-return and dispersion
    columns), ``sector_returns`` (dates x sectors: each sector's mean 5-day return minus
    the universe's), ``rank_returns`` (lag -> dates x members, the panels ranks are taken
    in) and the ``sectors`` of every symbol they are known for, members or not."""

    market: pd.DataFrame
    sector_returns: pd.DataFrame
    rank_returns: dict[int, pd.DataFrame]
    sectors: dict[str, str]
    min_members: int = MIN_MEMBERS

    @classmethod
    def from_histories(
        cls,
        histories: Mapping[str, pd.DataFrame],
        sectors: Mapping[str, str] | None = None,
        min_members: int = MIN_MEMBERS,
    ) -> CrossSection:
        """The context of a universe: ``histories`` maps symbol -> prices with ``close``;
        ``sectors`` maps symbols to sectors (default: the bundled universe's GICS sectors)."""
        if not histories:
            raise ValueError("a cross-section needs at least one symbol's history")
        panels = {
            lag: pd.DataFrame({s: trailing_returns(p["close"], lag) for s, p in histories.items()})
            for lag in LAGS
        }
        enough = {lag: panel.notna().sum(axis=1) >= min_members for lag, panel in panels.items()}
        market = pd.DataFrame(
            {
                **{f"xs_mean_ret_{k}": panels[k].mean(axis=1).where(enough[k]) for k in MEAN_LAGS},
                "xs_dispersion_5": panels[5].std(axis=1, ddof=1).where(enough[5]),
            }
        )
        known = dict(bundled_sectors() if sectors is None else sectors)
        members = {s: sector for s, sector in known.items() if s in histories}
        universe_mean = market[f"xs_mean_ret_{SECTOR_LAG}"]
        sector_returns = pd.DataFrame(
            {
                sector: panels[SECTOR_LAG][names].mean(axis=1) - universe_mean
                for sector in sorted(set(members.values()))
                for names in [[s for s, name in members.items() if name == sector]]
            },
            index=market.index,
        )
        ranks = {lag: panels[lag].astype(np.float32) for lag in RANK_LAGS}
        logger.debug("cross-section of %d symbols, %d dates", len(histories), len(market))
        return cls(market, sector_returns, ranks, known, min_members)

    @property
    def members(self) -> list[str]:
        return list(self.rank_returns[RANK_LAGS[0]].columns)

    def features(self, prices: pd.DataFrame, symbol: str | None = None) -> pd.DataFrame:
        """The context columns at every row of ``prices`` (``symbol`` names its sector)."""
        index = prices.index
        out = self.market.reindex(index)
        for lag in RANK_LAGS:
            own = trailing_returns(prices["close"], lag).to_numpy()
            out[f"xs_rank_{lag}"] = self._rank(lag, index, own)
        sector = self.sectors.get(symbol) if symbol is not None else None
        column = f"xs_sector_ret_{SECTOR_LAG}"
        if sector not in self.sector_returns.columns:
            out[column] = np.nan
        else:
            out[column] = self.sector_returns[sector].reindex(index)
        return out[list(CROSS_SECTION_FEATURES)].astype(np.float64)

    def _rank(self, lag: int, index: pd.DatetimeIndex, own: np.ndarray) -> np.ndarray:
        """The mid-rank percentile of ``own`` among the members' returns on each date,
        mapped to [-1, 1] (NaN where the date has too few members or ``own`` is NaN)."""
        panel = self.rank_returns[lag].reindex(index).to_numpy(dtype=np.float64)
        own = own.astype(np.float32).astype(np.float64)  # a member ties with itself
        known = ~np.isnan(panel)
        count = known.sum(axis=1)
        with np.errstate(invalid="ignore"):
            below = (known & (panel < own[:, None])).sum(axis=1)
            ties = (known & (panel == own[:, None])).sum(axis=1)
            rank = 2.0 * (below + 0.5 * ties) / np.maximum(count, 1) - 1.0
        return np.where((count >= self.min_members) & ~np.isnan(own), rank, np.nan)
