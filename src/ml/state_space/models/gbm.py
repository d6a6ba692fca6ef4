"""A global gradient-boosting quantile model: the peer many quants would pick instead.

One LightGBM model per horizon and quantile, fitted on the rows of *every* symbol at
once (a "global" model): the inputs are the same causal, scale-free features the
networks see (``features.engineer``: close-only by default, so every symbol has the same
columns; with ``GBMConfig.ohlcv`` the OHLC and volume ones too, and with
``GBMConfig.cross_section`` the universe context of ``features.cross_section``) at the
origin row, plus the log of the trailing 60-day volatility; the target is the
volatility-scaled forward return ``r_h / (sigma_60 * sqrt(h))``. A forecast multiplies
the predicted quantiles back by ``sigma_60(t) * sqrt(h)``, sorts them and widens bands
that are narrower than a shorter horizon's (``postprocess.monotone_bands``).

The number of trees is chosen by early stopping on each symbol's last
``validation_rows`` target rows (an embargo of ``h`` rows before them), then the model
is refitted on all rows with that many trees, so the forecast has seen the latest years.
The early-stopped trees are kept: each series' gate (and an unseen series') is chosen on
their forecasts of its validation rows.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Self

import lightgbm as lgb
import numpy as np
import pandas as pd

from ml.state_space.data.artefacts import touches_flagged
from ml.state_space.features.cross_section import CrossSection
from ml.state_space.features.engineer import TimeSeriesFeatureEngineer
from ml.state_space.models.base import (
    DEFAULT_HORIZONS,
    DEFAULT_QUANTILES,
    VOLATILITY_FLOOR,
    VOLATILITY_WINDOW,
    Forecaster,
    forward_log_returns,
    origin_positions,
    trailing_volatility,
)
from ml.state_space.models.baselines import check_horizons, check_quantiles, require_fitted
from ml.state_space.models.card import ModelCard
from ml.state_space.models.fallback import Fallback, fallback_from_dict
from ml.state_space.models.garch import DriftGarchFHS
from ml.state_space.models.postprocess import (
    QuantileCorrection,
    ValidationBlock,
    fit_gate,
    monotone_bands,
)
from ml.state_space.models.servable import InsufficientHistoryError, Servable, Variant

__all__ = ["GBMConfig", "GBMSeriesForecaster", "GlobalQuantileGBM"]

logger = logging.getLogger(__name__)

VOLATILITY_FEATURE = "log_vol_60"
BOOSTERS_FORMAT = "lgbm-quantile-boosters/1"


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
    # fit on every k-th row of each series, k the least that keeps at most this many
    # rows per horizon (neighbouring rows share most of their h-day target; a universe
    # of 400 series has 1.6 M rows, 20 series 150 k: those keep every row)
    max_fit_rows: int = 400_000
    # inputs: the close-only features (False), or the OHLC and volume ones too where a
    # series has those columns (missing ones are NaN, which LightGBM treats as missing)
    ohlcv: bool = False
    # add the cross-sectional context of the fitted universe (features.cross_section)
    cross_section: bool = False
    # per series and horizon, blend with the drift-garch-fhs fallback by the weight that
    # the validation rows support (the networks' gate, models.postprocess): the served
    # default (docs/EVALUATION.md, round 5); False serves the global model raw
    gate: bool = True

    def __post_init__(self) -> None:
        fractions = (self.learning_rate, self.feature_fraction, self.bagging_fraction)
        counts = (self.num_leaves - 1, self.min_data_in_leaf, self.max_trees)
        counts += (self.early_stopping_rounds, self.validation_rows, self.max_fit_rows)
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
    """One horizon's rows of every series: model inputs (N, F), targets in units of
    ``sigma_60 sqrt(h)``, role, series (an index into the fitted symbols), row position in
    that series' prices, and the unit ``sigma_60 sqrt(h)`` itself (all (N,))."""

    inputs: np.ndarray
    targets: np.ndarray
    role: np.ndarray
    series: np.ndarray
    positions: np.ndarray
    scale: np.ndarray

    @classmethod
    def concatenate(cls, parts: Sequence[_Rows]) -> _Rows:
        return cls(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)))

    def select(self, series: int, role: int) -> _Rows:
        """The rows of one series with one role."""
        chosen = (self.series == series) & (self.role == role)
        return _Rows(*(getattr(self, f.name)[chosen] for f in fields(self)))


@dataclass
class _Gate:
    """One series' blend weights of the model per horizon (H,) and its fallback fitted on
    all its prices (the served one)."""

    weights: np.ndarray
    fallback: DriftGarchFHS


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
        ohlcv = self.config.ohlcv
        self.engineer = TimeSeriesFeatureEngineer(use_ohlc=ohlcv, use_volume=ohlcv)
        self.context_: CrossSection | None = None
        self.boosters_: dict[tuple[int, float], lgb.Booster] | None = None
        self.gates_: dict[str, _Gate] = {}
        self.stopped_: dict[tuple[int, float], lgb.Booster] = {}  # the early-stopped trees

    def __repr__(self) -> str:
        return f"GlobalQuantileGBM(horizons={self.horizons}, quantiles={self.quantiles})"

    def to_dict(self) -> dict[str, Any]:
        """The settings (not the trees), JSON-serialisable: a model card's ``config``."""
        return {
            "horizons": list(self.horizons),
            "quantiles": list(self.quantiles),
            "gbm": asdict(self.config),
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GlobalQuantileGBM:
        """An unfitted model of the settings :meth:`to_dict` wrote."""
        return cls(data["horizons"], data["quantiles"], GBMConfig(**data["gbm"]), data["seed"])

    @property
    def history_rows(self) -> int:
        """Rows of price history the forecast at one origin depends on."""
        return max(self.engineer.warmup, VOLATILITY_WINDOW) + 1

    def feature_names(self) -> list[str]:
        """The model's input columns, in order."""
        boosters = require_fitted(self.boosters_, self.name)
        return next(iter(boosters.values())).feature_name()

    def to_bytes(self) -> bytes:
        """Every (horizon, quantile) model's trees as JSON (LightGBM's text format)."""
        boosters = require_fitted(self.boosters_, self.name)
        if self.config.cross_section:
            raise ValueError(
                "a cross-sectional LightGBM is a backtest candidate: its universe context "
                "is not stored with the trees, so it cannot be saved or served"
            )
        document = {
            "format": BOOSTERS_FORMAT,
            "boosters": [
                {"horizon": h, "quantile": q, "model": booster.model_to_string()}
                for (h, q), booster in boosters.items()
            ],
        }
        return json.dumps(document).encode()

    def load_boosters(self, model_bytes: bytes) -> Self:
        """Restore the trees :meth:`to_bytes` wrote; ValueError if they are not this
        model's (another format, horizons or quantiles)."""
        document = json.loads(model_bytes)
        if not isinstance(document, dict) or document.get("format") != BOOSTERS_FORMAT:
            raise ValueError(f"not a {BOOSTERS_FORMAT} document")
        boosters = {
            (int(b["horizon"]), float(b["quantile"])): lgb.Booster(model_str=b["model"])
            for b in document["boosters"]
        }
        expected = {(h, q) for h in self.horizons for q in self.quantiles}
        if set(boosters) != expected:
            raise ValueError(
                f"the trees are for (horizon, quantile) {sorted(boosters)}, the model "
                f"expects {sorted(expected)}"
            )
        self.boosters_ = {key: boosters[key] for key in sorted(expected)}
        return self

    def fit(self, prices: pd.DataFrame) -> Self:
        """Fit on one symbol's history (a global model of one series)."""
        return self.fit_many({"series": prices})

    def fit_many(
        self, histories: Mapping[str, pd.DataFrame], context: CrossSection | None = None
    ) -> Self:
        """Fit every (horizon, quantile) model on the rows of all ``histories`` (and, with
        ``config.gate``, each series' blend with its fallback); a series too short for
        the features is left out (logged). ``context`` is the universe's cross-section
        (``config.cross_section``; built from ``histories`` when not given)."""
        if self.config.cross_section:
            self.context_ = context or CrossSection.from_histories(histories)
        usable = {s: p for s, p in histories.items() if len(p) > self.history_rows}
        for symbol in sorted(set(histories) - set(usable)):
            logger.info(
                "lgbm: %s left out of the fit: %d rows, the features need more than %d",
                symbol,
                len(histories[symbol]),
                self.history_rows,
            )
        if not usable:
            raise ValueError(
                f"no series has more than the {self.history_rows} rows the features need"
            )
        histories = usable
        designs = {symbol: self._design(prices, symbol) for symbol, prices in histories.items()}
        names = list(next(iter(designs.values())).features.columns)
        boosters, validation = {}, []
        self.stopped_ = {}
        for horizon in self.horizons:
            rows = self._rows(histories, designs, horizon)
            stopped = {}
            for level in self.quantiles:
                boosters[horizon, level], early = self._fit_one(rows, names, horizon, level)
                if early is not None:
                    stopped[level] = early
            validation.append(rows)
            self.stopped_ |= {(horizon, q): b for q, b in stopped.items()}
        self.boosters_ = boosters
        if self.config.gate:
            self.gates_ = {
                symbol: self._gate(prices, [rows.select(index, VALIDATE) for rows in validation])
                for index, (symbol, prices) in enumerate(histories.items())
            }
        return self

    def for_series(self, symbol: str, prices: pd.DataFrame | None = None) -> Forecaster:
        """The forecaster of one series: gated by its own blend weights and fallback when
        ``config.gate`` (:class:`GBMSeriesForecaster`; a series the model was not fitted
        on gets its gate from ``prices``, its history), the global model otherwise."""
        return self.series(symbol, prices) if self.config.gate else self

    def series(self, symbol: str, prices: pd.DataFrame | None = None) -> GBMSeriesForecaster:
        """The gated forecaster of one series: a fitted one's, or, given its history
        ``prices``, an unseen one's (its gate chosen on its own latest rows, as a fitted
        series' is, with the early-stopped trees)."""
        if not self.config.gate:
            raise ValueError("an ungated model has no per-series gates: set GBMConfig.gate")
        if symbol in self.gates_:
            gate = self.gates_[symbol]
        elif prices is None:
            raise ValueError(
                f"{symbol!r} was not among the series this model was fitted on: pass its "
                "history to gate it"
            )
        else:
            gate = self._gate_unseen(symbol, prices)
        return GBMSeriesForecaster(self, gate.weights, gate.fallback, symbol=symbol)

    def predict_quantiles(self, prices: pd.DataFrame, origins: pd.DatetimeIndex) -> np.ndarray:
        """(n_origins, n_horizons, n_quantiles) log-return quantiles; origin ``t`` uses
        rows ``<= t`` only (the features and the volatility are causal)."""
        z, scale = self.predict_z(prices, origins)
        return monotone_bands(z * scale[:, :, None], self.quantiles, self.horizons)

    def predict_z(
        self, prices: pd.DataFrame, origins: pd.DatetimeIndex, symbol: str | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Sorted quantiles in units of ``sigma_60 sqrt(h)`` (n, H, Q), and those units (n, H);
        ``symbol`` names the series' sector for the cross-sectional features."""
        boosters = require_fitted(self.boosters_, self.name)
        positions = origin_positions(prices.index, origins)
        design = self._design(prices.iloc[: positions.max(initial=0) + 1], symbol)
        first = int(design.positions[0])  # feature rows are contiguous from here on
        if len(positions) and positions.min() < first:
            raise ValueError(
                f"origin {origins[np.argmin(positions)].date()} has fewer than the {first + 1} "
                "rows of history the features need; start the origins later"
            )
        rows = positions - first
        inputs = design.features[self.feature_names()].to_numpy()[rows]
        scale = design.sigma[rows][:, None] * np.sqrt(np.asarray(self.horizons, float))[None, :]
        z = np.stack(
            [
                np.stack([boosters[h, q].predict(inputs) for q in self.quantiles], axis=-1)
                for h in self.horizons
            ],
            axis=1,
        )  # (n, H, Q)
        return np.sort(z, axis=-1), scale

    def _gate(self, prices: pd.DataFrame, blocks: Sequence[_Rows]) -> _Gate:
        """One series' gate: the model's weight per horizon against a fallback fitted on
        the prices up to the series' first validation origin, tested on its validation
        rows ``blocks`` (one per horizon; ``postprocess.blend_weight``), and the fallback
        refitted on all its prices (the served one)."""
        first_origin = min(int(block.positions.min(initial=len(prices))) for block in blocks)
        fallback = DriftGarchFHS(self.horizons, self.quantiles).fit(prices.iloc[: first_origin + 1])
        validation: list[ValidationBlock | None] = []
        for h, (horizon, block) in enumerate(zip(self.horizons, blocks, strict=True)):
            stopped = [self.stopped_.get((horizon, q)) for q in self.quantiles]
            if len(block.targets) == 0 or None in stopped:
                validation.append(None)  # nothing to validate on: the fallback is served
                continue
            z = np.sort(np.stack([b.predict(block.inputs) for b in stopped], axis=-1), axis=-1)
            origins = prices.index[block.positions]
            baseline = fallback.predict_quantiles(prices, origins)[:, h] / block.scale[:, None]
            validation.append((z, block.targets, baseline))
        weights = np.asarray(fit_gate(validation, self.quantiles, self.horizons).blend_weight)
        served = DriftGarchFHS(self.horizons, self.quantiles).fit(prices)
        return _Gate(weights, served)

    def _gate_unseen(self, symbol: str, prices: pd.DataFrame) -> _Gate:
        """The gate of a series the model was not fitted on, from its own history."""
        design = {symbol: self._design(prices, symbol)}
        blocks = [
            self._rows({symbol: prices}, design, horizon).select(0, VALIDATE)
            for horizon in self.horizons
        ]
        gate = self._gate(prices, blocks)
        logger.debug("lgbm %s (unseen): model weight per horizon %s", symbol, gate.weights)
        return gate

    def _design(self, prices: pd.DataFrame, symbol: str | None = None) -> _Design:
        features = self._features(prices, symbol)
        positions = np.arange(len(prices) - len(features), len(prices))
        sigma = trailing_volatility(prices)[positions]
        known = ~np.isnan(sigma)
        sigma = np.maximum(sigma[known], VOLATILITY_FLOOR)
        features = features[known].assign(**{VOLATILITY_FEATURE: np.log(sigma)})
        return _Design(features, sigma, positions[known])

    def _features(self, prices: pd.DataFrame, symbol: str | None) -> pd.DataFrame:
        """The engineer's features (OHLCV ones NaN where the frame lacks the columns),
        and the cross-sectional context at each row with ``config.cross_section``."""
        if self.config.ohlcv:
            features = TimeSeriesFeatureEngineer().resolve(prices).transform(prices)
            features = features.reindex(columns=self.engineer.feature_names())
        else:
            features = self.engineer.transform(prices)
        if self.config.cross_section:
            context = require_fitted(self.context_, self.name)
            features = features.join(context.features(prices.loc[features.index[0] :], symbol))
        return features

    def _rows(
        self, histories: Mapping[str, pd.DataFrame], designs: Mapping[str, _Design], horizon: int
    ) -> _Rows:
        """Every row of ``horizon`` with a known target whose volatility window and target
        touch no day the artefact policy flagged (``docs/DATA.md``), and which of them
        validate: each symbol's last ``validation_rows``; the ``horizon`` rows before
        those are left out of early stopping's training rows so no training target
        overlaps them."""
        parts = []
        for index, (symbol, design) in enumerate(designs.items()):
            prices = histories[symbol]
            returns = forward_log_returns(prices, horizon)[design.positions]
            scale = design.sigma * np.sqrt(horizon)
            flagged = pd.DatetimeIndex(prices.attrs.get("flagged", []))
            origins = prices.index[design.positions]
            touched = touches_flagged(prices.index, flagged, origins, horizon, VOLATILITY_WINDOW)
            known = np.flatnonzero(~np.isnan(returns) & ~touched)
            split = max(len(known) - self.config.validation_rows, 0)
            role = np.full(len(known), TRAIN)
            role[max(split - horizon, 0) : split] = EMBARGO
            role[split:] = VALIDATE
            parts.append(
                _Rows(
                    design.features.to_numpy()[known],
                    returns[known] / scale[known],
                    role,
                    np.full(len(known), index),
                    design.positions[known],
                    scale[known],
                )
            )
        return _Rows.concatenate(parts)

    def _fit_one(
        self, rows: _Rows, names: list[str], horizon: int, level: float
    ) -> tuple[lgb.Booster, lgb.Booster | None]:
        """Early-stop on the validation rows, then refit on every row with that many trees;
        returns the refitted booster and the early-stopped one (None without validation)."""
        params = self.config.params(level, self.seed)
        trees = self.config.max_trees
        kept = self._thinned(rows)
        train, valid = kept & (rows.role == TRAIN), rows.role == VALIDATE
        stopped = None
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
        everything = lgb.Dataset(rows.inputs[kept], rows.targets[kept], feature_name=names)
        return lgb.train(params, everything, num_boost_round=trees), stopped

    def _thinned(self, rows: _Rows) -> np.ndarray:
        """Which rows the trees are fitted on: every k-th row of each series, k the least
        with at most ``config.max_fit_rows`` rows (validation rows all score the stop)."""
        stride = -(-len(rows.targets) // self.config.max_fit_rows)
        return rows.positions % stride == 0


class GBMSeriesForecaster(Servable):
    """One series' forecaster of a fitted, gated global model: the model blended with the
    series' fallback by the weights its validation rows supported (0: the fallback alone).

    What the backtest scores (``GlobalQuantileGBM.for_series``) and, rebuilt from a
    registry version (:meth:`from_bytes`), what the service serves.
    """

    name = "lgbm"

    def __init__(
        self,
        model: GlobalQuantileGBM,
        weights: Sequence[float],
        fallback: Fallback,
        card: ModelCard | None = None,
        symbol: str | None = None,
    ) -> None:
        self.model, self.fallback, self.card = model, fallback, card
        self.symbol = card.symbol if card is not None else symbol
        self.horizons, self.quantiles = model.horizons, model.quantiles
        self.correction = QuantileCorrection(
            tuple(float(w) for w in weights), ((0.0,) * len(self.quantiles),) * len(weights)
        )

    def __repr__(self) -> str:
        fitted = f" of {self.card.symbol}" if self.card else ""
        return f"GBMSeriesForecaster{fitted}(weights={self.correction.blend_weight})"

    def fit(self, prices: pd.DataFrame) -> Self:
        raise TypeError("a series of a global model is fitted through GlobalQuantileGBM.fit_many")

    @property
    def history_rows(self) -> int:
        return self.model.history_rows

    def predict_quantiles(self, prices: pd.DataFrame, origins: pd.DatetimeIndex) -> np.ndarray:
        """(n_origins, H, Q) log-return quantiles; origin ``t`` uses rows ``<= t`` only."""
        return self.predict_variants(prices, origins)["trained"]

    def predict_variants(
        self, prices: pd.DataFrame, origins: pd.DatetimeIndex
    ) -> dict[Variant, np.ndarray]:
        origins = pd.DatetimeIndex(origins)
        try:
            z, scale = self.model.predict_z(prices, origins, self.symbol)
        except ValueError as error:  # too short, non-positive prices, non-finite features
            symbol = self.symbol or "series"
            raise InsufficientHistoryError(f"{symbol}: unusable price history: {error}") from error
        return self.gated(z * scale[:, :, None], scale, prices, origins, model_z=z)

    def to_bytes(self) -> bytes:
        """The global model's trees (the series' weights and fallback travel on the card)."""
        return self.model.to_bytes()

    @classmethod
    def from_bytes(cls, model_bytes: bytes, card: ModelCard) -> GBMSeriesForecaster:
        """The series forecaster a registry version holds: trees and model card."""
        if card.correction is None:
            raise ValueError(f"the {card.symbol} lgbm card has no gate weights (correction)")
        model = GlobalQuantileGBM.from_dict(card.config).load_boosters(model_bytes)
        if model.feature_names() != card.features.names:
            raise ValueError(
                f"the trees' inputs {model.feature_names()} differ from the card's "
                f"{card.features.names}"
            )
        model.engineer = TimeSeriesFeatureEngineer.from_dict(card.features.engineer)
        fallback = fallback_from_dict(card.fallback, model.horizons, model.quantiles)
        weights = QuantileCorrection.from_dict(card.correction).blend_weight
        return cls(model, weights, fallback, card)
