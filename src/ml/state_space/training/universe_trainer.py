"""Train the universe network: one Mamba on every symbol's windows, served for any symbol.

As for the global LightGBM (``training.gbm_trainer``), each symbol's most recent
``test_fraction`` of rows is held out behind an embargo of the longest horizon: a first
pooled fit on the histories before those blocks is scored on them (each version's test
metrics), then the served network is fitted again on every price, early-stopped on the
latest validation blocks (or, with ``config.refit``, the first fit is retrained on every
window for its best epochs), so it has seen the latest years. Each symbol's version
holds the shared network and a card with its own gate and fallback; the shared version
(``ModelRegistry.shared``) holds the network alone, which the
service gates on an unseen symbol's own history (``PooledNeuralForecaster.for_series``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import replace
from statistics import median

import pandas as pd

from ml.state_space.data.quality import DataQualityError, validate_price_data
from ml.state_space.engine.loop import EpochCallback, best_epoch
from ml.state_space.models.config import TrainingConfig
from ml.state_space.models.mamba.forecaster import MambaForecaster
from ml.state_space.models.neural import span
from ml.state_space.models.pooled import PooledNeuralForecaster
from ml.state_space.registry import SHARED_NAME
from ml.state_space.training.trainer import (
    GlobalResult,
    TrainingResult,
    holdout,
    score_test_block,
)

logger = logging.getLogger(__name__)

#: The universe network the design years chose (docs/EVALUATION.md, round 9): OHLCV
#: inputs through one global normaliser, 32,768 windows drawn per epoch, no refit.
UNIVERSE_TRAINING = TrainingConfig(
    pooled=True,
    pooled_normalizer="global",
    pooled_ohlcv=True,
    windows_per_epoch=32_768,
    refit=False,
)


def train_universe(
    histories: Mapping[str, pd.DataFrame],
    config: TrainingConfig = UNIVERSE_TRAINING,
    on_epoch: EpochCallback | None = None,
) -> GlobalResult:
    """Fit, score and package the universe network of ``histories``; ``on_epoch`` hears
    each epoch of both fits. Each fit keeps its checkpoints in a temporary directory of
    its own (a fit's scratch state must not reach the next fit)."""
    check_universe_config(config)
    started = time.perf_counter()
    usable, failures = _usable(histories, config)
    if not usable:
        return GlobalResult([], failures)
    longest = max(config.model.horizons)
    held_out = {s: holdout(prices, config.test_fraction, longest) for s, prices in usable.items()}
    tested = PooledNeuralForecaster(MambaForecaster, config).fit_many(
        {s: fit for s, (fit, _) in held_out.items()}, on_epoch=on_epoch, refit=False
    )
    logger.info("universe: fitted before the test blocks in %.0f s", time.perf_counter() - started)
    scored = _scored(tested, held_out, usable)  # before any refit: no test block seen
    failures |= {s: ValueError(reason) for s, reason in tested.skipped.items()}
    if config.refit:  # the tested network retrained on every window for its best epochs
        served = tested.refit(usable)
    else:  # a fresh early-stopped fit on every price; the first fit's windows freed first
        del tested
        served = PooledNeuralForecaster(MambaForecaster, config).fit_many(
            usable, on_epoch=on_epoch, refit=False
        )
    failures |= {s: ValueError(reason) for s, reason in served.skipped.items()}
    seconds = time.perf_counter() - started
    network_bytes = served.shared_bytes()
    history, stop_reason = served.shared.history, served.shared.stop_reason
    members = []
    for symbol, (origins, test, table) in scored.items():
        if symbol not in served.members:
            continue
        forecaster = served.members[symbol]
        card = forecaster.card
        card = replace(card, training_seconds=seconds, split={**card.split, "test": span(origins)})
        metrics = {
            "symbol": symbol,
            "version": card.version,
            "epochs": history,
            "best_epoch": best_epoch(history),
            "stop_reason": stop_reason,
            "refit_epochs": card.refit_epochs,
            "training_seconds": seconds,
            "split": {name: vars(s) for name, s in card.split.items()},
            "model_weight": {f"h{h}": w for h, w in forecaster.model_weights().items()},
            "test": test,
            "test_forecasts": table,
        }
        members.append(TrainingResult(symbol, network_bytes, card.to_dict(), metrics))
    shared_card = served.shared_card()
    shared_metrics = {
        "symbol": SHARED_NAME,
        "version": shared_card.version,
        "symbols": [result.symbol for result in members],
        "epochs": history,
        "best_epoch": best_epoch(history),
        "stop_reason": stop_reason,
        "training_seconds": seconds,
        "test": _median_test(members),
    }
    shared = TrainingResult(SHARED_NAME, network_bytes, shared_card.to_dict(), shared_metrics)
    logger.info("universe: %d symbols fitted, scored and served in %.0f s", len(members), seconds)
    return GlobalResult(members, failures, shared)


def check_universe_config(config: TrainingConfig) -> None:
    """ValueError unless ``config`` fits a network that forecasts any symbol."""
    if not (config.pooled and config.pooled_normalizer == "global"):
        raise ValueError(
            "the universe network is one pooled network with one global normaliser: "
            "pooled=True, pooled_normalizer='global'"
        )


def _usable(
    histories: Mapping[str, pd.DataFrame], config: TrainingConfig
) -> tuple[dict[str, pd.DataFrame], dict[str, Exception]]:
    """The histories long and clean enough for a fit and a test block, and why the
    others are not."""
    usable, failures = {}, {}
    for symbol, prices in histories.items():
        if config.days is not None:
            prices = prices.iloc[-config.days :]
        try:
            validate_price_data(prices, symbol, min_rows=config.min_history())
        except (DataQualityError, ValueError) as error:
            logger.error("%s left out: %s", symbol, error)
            failures[symbol] = error
            continue
        usable[symbol] = prices
    return usable, failures


def _scored(
    tested: PooledNeuralForecaster,
    held_out: Mapping[str, tuple[pd.DataFrame, pd.DatetimeIndex]],
    histories: Mapping[str, pd.DataFrame],
) -> dict[str, tuple[pd.DatetimeIndex, dict, dict]]:
    """Per fitted symbol: its test origins, test metrics and forecast table."""
    scored = {}
    for symbol, member in tested.members.items():
        fit_prices, origins = held_out[symbol]
        quantiles = member.predict_quantiles(histories[symbol], origins)
        test, table = score_test_block(histories[symbol], fit_prices, origins, quantiles, member)
        scored[symbol] = origins, test, table
    return scored


def _median_test(members: list[TrainingResult]) -> dict[str, dict[str, float | int]]:
    """Per horizon, the median over symbols of the test blocks' figures."""
    if not members:
        return {}
    summary = {}
    for horizon, first in members[0].metrics["test"].items():
        figures: dict[str, float | int] = {"symbols": len(members)}
        for name, value in first.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            values = [m.metrics["test"][horizon].get(name) for m in members]
            numbers = [v for v in values if isinstance(v, int | float)]
            if numbers:
                figures[name] = median(numbers)
        summary[horizon] = figures
    return summary
