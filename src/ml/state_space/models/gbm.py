"""A global gradient-boosting quantile model: the peer many quants would pick instead.

One LightGBM model per horizon and quantile, fitted on the rows of *every* symbol at
once (a "global" model): the inputs are the same causal, scale-free features the
networks see (``features.engineer``, close-only, so every symbol has the same columns)
at the origin row, plus the log of the trailing 60-day volatility; the target is the
volatility-scaled forward return ``r_h / (sigma_60 * sqrt(h))``. A forecast multiplies
the predicted quantiles back by ``sigma_60(t) * sqrt(h)``, sorts them and widens bands
that are narrower than a shorter horizon's (``postprocess.monotone_bands``).

The number of trees is chosen by early stopping on each symbol's last
``validation_rows`` target rows (an embargo of ``h`` rows before them), then the model
is refitted on all rows with that many trees, so the forecast has seen the latest years.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Self

import lightgbm as lgb
import numpy as np
import pandas as pd

from ml.state_space.features.engineer import TimeSeriesFeatureEngineer
from ml.state_space.models.base import (
    DEFAULT_HORIZONS,
    DEFAULT_QUANTILES,
    VOLATILITY_FLOOR,
    forward_log_returns,
    origin_positions,
    trailing_volatility,
)
from ml.state_space.models.baselines import check_horizons, check_quantiles, require_fitted
from ml.state_space.models.postprocess import monotone_bands

__all__ = ["GBMConfig", "GlobalQuantileGBM"]

logger = logging.getLogger(__name__)

VOLATILITY_FEATURE = "log_vol_60"


@dataclass(frozen=True)
class GBMConfig:
    """LightGBM settings shared by every (horizon, quantile) model.

    Shallow trees, a slow learning rate and large leaves: the signal in daily returns is
    weak, so the model must not fit noise.
    """

    learning_rate: float = 0.03
    num_leaves: int = 15
    min_data_in_leaf: int = 500
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    lambda_l2: float = 10.0
    max_trees: int = 400
    early_stopping_rounds: int = 40
    validation_rows: int = 504  # two years of each symbol's latest target rows

    def __post_init__(self) -> None:
        fractions = (self.learning_rate, self.feature_fraction, self.bagging_fraction)
        counts = (self.num_leaves - 1, self.min_data_in_leaf, self.max_trees)
        counts += (self.early_stopping_rounds, self.validation_rows)
        valid_fractions = all(isinstance(f, float | int) and 0 < f <= 1 for f in fractions)
        valid_counts = all(isinstance(c, int) and c >= 1 for c in counts)
        if not (valid_fractions and valid_counts and self.lambda_l2 >= 0):
            raise ValueError(
                f"invalid {self!r}: rates and fractions must be in (0, 1], counts positive "
                "integers (num_leaves >= 2), lambda_l2 >= 0"
            )

    def params(self, level: float, seed: int) -> dict[str, Any]:
        """LightGBM parameters of the ``level``-quantile model."""
        return {
            "objective": "quantile",
            "alpha": level,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": self.feature_fraction,
            "bagging_fraction": self.bagging_fraction,
            "bagging_freq": 1,
            "lambda_l2": self.lambda_l2,
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }


@dataclass
class _Design:
    """One symbol's model inputs at every feature row, and the scale of its targets."""

    features: pd.DataFrame  # (T', F), indexed by date
    sigma: np.ndarray  # (T',) trailing daily volatility, floored
    positions: np.ndarray  # (T',) row of each feature row in the price frame


TRAIN, EMBARGO, VALIDATE = 0, 1, 2


@dataclass
class _Rows:
    """The model inputs (N, F), scaled targets (N,) and role (N,) of one horizon's rows."""

    inputs: np.ndarray
    targets: np.ndarray
    role: np.ndarray


class GlobalQuantileGBM:
    """LightGBM quantile regression across symbols; a :class:`Forecaster` per symbol."""

    name = "lgbm"

    def __init__(
        self,
        horizons: Sequence[int] = DEFAULT_HORIZONS,
        quantiles: Sequence[float] = DEFAULT_QUANTILES,
        config: GBMConfig | None = None,
        seed: int = 42,
    ) -> None:
        self.horizons = check_horizons(horizons)
        self.quantiles = check_quantiles(quantiles)
        self.config = config or GBMConfig()
        self.seed = seed
        self.engineer = TimeSeriesFeatureEngineer(use_ohlc=False, use_volume=False)
        self.boosters_: dict[tuple[int, float], lgb.Booster] | None = None

    def __repr__(self) -> str:
        return f"GlobalQuantileGBM(horizons={self.horizons}, quantiles={self.quantiles})"

    def to_dict(self) -> dict[str, Any]:
        return {"config": asdict(self.config), "seed": self.seed}

    def fit(self, prices: pd.DataFrame) -> Self:
        """Fit on one symbol's history (a global model of one series)."""
        return self.fit_many({"series": prices})

    def fit_many(self, histories: Mapping[str, pd.DataFrame]) -> Self:
        """Fit every (horizon, quantile) model on the rows of all ``histories``."""
        designs = {symbol: self._design(prices) for symbol, prices in histories.items()}
        names = list(next(iter(designs.values())).features.columns)
        boosters = {}
        for horizon in self.horizons:
            rows = self._rows(histories, designs, horizon)
            for level in self.quantiles:
                boosters[horizon, level] = self._fit_one(rows, names, horizon, level)
        self.boosters_ = boosters
        return self

    def predict_quantiles(self, prices: pd.DataFrame, origins: pd.DatetimeIndex) -> np.ndarray:
        """(n_origins, n_horizons, n_quantiles) log-return quantiles; origin ``t`` uses
        rows ``<= t`` only (the features and the volatility are causal)."""
        boosters = require_fitted(self.boosters_, self.name)
        positions = origin_positions(prices.index, origins)
        design = self._design(prices.iloc[: positions.max(initial=0) + 1])
        first = int(design.positions[0])  # feature rows are contiguous from here on
        if len(positions) and positions.min() < first:
            raise ValueError(
                f"origin {origins[np.argmin(positions)].date()} has fewer than the {first + 1} "
                "rows of history the features need; start the origins later"
            )
        rows = positions - first
        inputs = design.features.to_numpy()[rows]
        scale = design.sigma[rows][:, None] * np.sqrt(np.asarray(self.horizons, float))[None, :]
        z = np.stack(
            [
                np.stack([boosters[h, q].predict(inputs) for q in self.quantiles], axis=-1)
                for h in self.horizons
            ],
            axis=1,
        )  # (n, H, Q)
        quantiles = np.sort(z, axis=-1) * scale[:, :, None]
        return monotone_bands(quantiles, self.quantiles, self.horizons)

    def _design(self, prices: pd.DataFrame) -> _Design:
        features = self.engineer.transform(prices)
        positions = np.arange(len(prices) - len(features), len(prices))
        sigma = trailing_volatility(prices)[positions]
        known = ~np.isnan(sigma)
        sigma = np.maximum(sigma[known], VOLATILITY_FLOOR)
        features = features[known].assign(**{VOLATILITY_FEATURE: np.log(sigma)})
        return _Design(features, sigma, positions[known])

    def _rows(
        self, histories: Mapping[str, pd.DataFrame], designs: Mapping[str, _Design], horizon: int
    ) -> _Rows:
        """Every row of ``horizon`` with a known target, and which of them validate: each
        symbol's last ``validation_rows``; the ``horizon`` rows before those are left out
        of early stopping's training rows so no training target overlaps them."""
        inputs, targets, roles = [], [], []
        for symbol, design in designs.items():
            returns = forward_log_returns(histories[symbol], horizon)[design.positions]
            target = returns / (design.sigma * np.sqrt(horizon))
            known = np.flatnonzero(~np.isnan(target))
            split = max(len(known) - self.config.validation_rows, 0)
            role = np.full(len(known), TRAIN)
            role[max(split - horizon, 0) : split] = EMBARGO
            role[split:] = VALIDATE
            inputs.append(design.features.to_numpy()[known])
            targets.append(target[known])
            roles.append(role)
        return _Rows(np.concatenate(inputs), np.concatenate(targets), np.concatenate(roles))

    def _fit_one(self, rows: _Rows, names: list[str], horizon: int, level: float) -> lgb.Booster:
        """Early-stop on the validation rows, then refit on every row with that many trees."""
        params = self.config.params(level, self.seed)
        trees = self.config.max_trees
        train, valid = rows.role == TRAIN, rows.role == VALIDATE
        if valid.any() and train.any():
            stopped = lgb.train(
                params,
                lgb.Dataset(rows.inputs[train], rows.targets[train], feature_name=names),
                num_boost_round=trees,
                valid_sets=[lgb.Dataset(rows.inputs[valid], rows.targets[valid])],
                callbacks=[lgb.early_stopping(self.config.early_stopping_rounds, verbose=False)],
            )
            trees = max(stopped.best_iteration, 1)
        logger.debug("lgbm h=%d q=%g: %d trees", horizon, level, trees)
        everything = lgb.Dataset(rows.inputs, rows.targets, feature_name=names)
        return lgb.train(params, everything, num_boost_round=trees)
