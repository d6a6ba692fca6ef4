"""Train the gated global LightGBM model on many symbols: one registry version per symbol.

The global model learns from every symbol at once, so it is fitted once per run, not
once per symbol. As for the networks (``trainer.train_symbol``), each symbol's most recent
``test_fraction`` of rows is held out behind an embargo of the longest horizon: a first
fit on the histories before those blocks is scored on them (the version's test metrics),
then the served model is refitted on every price, so it has seen the latest years.
Each symbol's version holds the refitted trees (shared by all symbols) and a card with
its own gate weights and fallback (``models.gbm.GBMSeriesForecaster``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import lightgbm as lgb
import pandas as pd

from ml.state_space.data.quality import DataQualityError, QualityReport, validate_price_data
from ml.state_space.models.base import DEFAULT_HORIZONS, DEFAULT_QUANTILES
from ml.state_space.models.card import (
    FeatureSpec,
    ModelCard,
    WindowSpan,
    library_versions,
    new_version,
)
from ml.state_space.models.fallback import fallback_min_rows, fallback_to_dict
from ml.state_space.models.gbm import GBMConfig, GlobalQuantileGBM
from ml.state_space.models.neural import data_window, span
from ml.state_space.training.trainer import (
    GlobalResult,
    TrainingResult,
    holdout,
    score_test_block,
)

logger = logging.getLogger(__name__)

FAMILY = "lgbm"
TEST_FRACTION = 0.15  # as the networks' TrainingConfig.test_fraction


@dataclass(frozen=True)
class GBMTraining:
    """What a run fits: the model's settings, gated as served and backtested."""

    horizons: tuple[int, ...] = DEFAULT_HORIZONS
    quantiles: tuple[float, ...] = DEFAULT_QUANTILES
    gbm: GBMConfig = field(default_factory=GBMConfig)
    seed: int = 42
    test_fraction: float = TEST_FRACTION

    def __post_init__(self) -> None:
        if not self.gbm.gate:
            raise ValueError("the served LightGBM is gated per series: GBMConfig(gate=True)")
        if not 0 < self.test_fraction < 0.5:
            raise ValueError(f"test_fraction={self.test_fraction} must be in (0, 0.5)")

    def model(self) -> GlobalQuantileGBM:
        return GlobalQuantileGBM(self.horizons, self.quantiles, self.gbm, self.seed)

    def min_rows(self) -> int:
        """Price rows a symbol needs: the features' warm-up, a validation block behind its
        embargo, the fallback's fit and a held-out test block."""
        fit_rows = self.model().history_rows + self.gbm.validation_rows + 2 * max(self.horizons)
        fit_rows = max(fit_rows, fallback_min_rows("drift-garch-fhs"))
        return int(fit_rows / (1 - self.test_fraction)) + max(self.horizons) + 1


def train_global(histories: Mapping[str, pd.DataFrame], training: GBMTraining) -> GlobalResult:
    """Fit, score and package the global model of ``histories``: one result per usable
    symbol and the reason each other symbol was left out."""
    started = time.perf_counter()
    usable: dict[str, tuple[pd.DataFrame, QualityReport]] = {}
    failures: dict[str, Exception] = {}
    for symbol, prices in histories.items():
        try:
            usable[symbol] = prices, validate_price_data(prices, symbol, training.min_rows())
        except (DataQualityError, ValueError) as error:
            logger.error("%s left out: %s", symbol, error)
            failures[symbol] = error
    if not usable:
        return GlobalResult([], failures)
    held_out = {
        symbol: holdout(prices, training.test_fraction, max(training.horizons))
        for symbol, (prices, _) in usable.items()
    }
    tested = training.model().fit_many({s: fit for s, (fit, _) in held_out.items()})
    logger.info("lgbm: fitted before the test blocks in %.0f s", time.perf_counter() - started)
    served = training.model().fit_many({s: prices for s, (prices, _) in usable.items()})
    model_bytes = served.to_bytes()
    seconds = time.perf_counter() - started
    logger.info("lgbm: %d symbols fitted, scored and refitted in %.0f s", len(usable), seconds)
    results = []
    for symbol, (prices, quality) in usable.items():
        fit_prices, origins = held_out[symbol]
        forecaster = tested.series(symbol)
        quantiles = forecaster.predict_quantiles(prices, origins)
        test, table = score_test_block(prices, fit_prices, origins, quantiles, forecaster)
        card = _card(symbol, prices, served, quality, seconds, span(origins))
        metrics = {
            "symbol": symbol,
            "version": card.version,
            "epochs": [],  # trees, not epochs: early stopping chose each model's count
            "trees": _tree_counts(served),
            "stop_reason": "fitted",
            "training_seconds": seconds,
            "split": {name: vars(s) for name, s in card.split.items()},
            "model_weight": {f"h{h}": w for h, w in served.series(symbol).model_weights().items()},
            "test": test,
            "test_forecasts": table,
        }
        results.append(TrainingResult(symbol, model_bytes, card.to_dict(), metrics))
    return GlobalResult(results, failures)


def _tree_counts(model: GlobalQuantileGBM) -> dict[str, int]:
    boosters = model.boosters_ or {}
    return {f"h{h} q{q:g}": booster.num_trees() for (h, q), booster in boosters.items()}


def _card(
    symbol: str,
    prices: pd.DataFrame,
    model: GlobalQuantileGBM,
    quality: QualityReport,
    seconds: float,
    test: WindowSpan,
) -> ModelCard:
    """The model card of one symbol's version of the served global model."""
    series = model.series(symbol)
    longest = max(model.horizons)  # validation origins whose every target is known
    validation = span(prices.index[-longest - model.config.validation_rows : -longest])
    version, trained_at = new_version()
    return ModelCard(
        family=FAMILY,
        symbol=symbol,
        version=version,
        trained_at=trained_at,
        training_seconds=seconds,
        config=model.to_dict(),
        features=FeatureSpec(
            engineer=model.engineer.to_dict(), names=model.feature_names(), price_columns=[]
        ),
        normalizer={},  # the inputs are scale-free; trees need no normaliser
        target_scale=[],  # targets are in units of sigma_60 sqrt(h), known at each origin
        data=data_window(prices),
        split={"val": validation, "test": test},
        data_quality=quality.to_dict(),
        versions=library_versions(lightgbm=lgb.__version__),
        correction=series.correction.to_dict(),
        fallback=fallback_to_dict(series.fallback),
    )
