"""Train, evaluate and package the forecaster of one symbol.

``train_symbol`` is one fold of the walk-forward backtest with the most recent
``test_fraction`` of the history as its test block: the forecaster is fitted on the
history before the block (minus an embargo of the longest horizon), then forecasts
every origin of the block from the prices up to that origin, next to the baselines.
It writes only scratch state under ``work_dir`` (checkpoints, resume state);
persisting the artefacts is the caller's business
(:class:`~ml.state_space.registry.ModelRegistry`), so the same job runs in a local
process pool or on a remote Dask worker.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ml.state_space.data.quality import validate_price_data
from ml.state_space.engine.loop import EpochCallback, best_epoch
from ml.state_space.evaluation.metrics import evaluate_forecasts
from ml.state_space.models.base import Forecaster, forward_log_returns
from ml.state_space.models.config import TrainingConfig, holdout_rows
from ml.state_space.models.mamba.forecaster import MambaForecaster
from ml.state_space.models.neural import span

logger = logging.getLogger(__name__)


@dataclass
class TrainingResult:
    """What one training job hands back: bytes to persist, and their descriptions."""

    symbol: str
    model_bytes: bytes
    metadata: dict[str, Any]
    metrics: dict[str, Any]


@dataclass
class GlobalResult:
    """What a job fitting every symbol at once hands back: one version per fitted symbol,
    the family's shared model if it has one (``ModelRegistry.shared``), and the symbols
    left out with their reasons."""

    members: list[TrainingResult]
    failures: dict[str, Exception] = field(default_factory=dict)
    shared: TrainingResult | None = None


def holdout(
    prices: pd.DataFrame, test_fraction: float, embargo: int
) -> tuple[pd.DataFrame, pd.DatetimeIndex]:
    """``(fit_prices, test_origins)`` for the most recent ``test_fraction`` of the feature rows.

    Test origins are the block's rows whose longest-horizon target exists (``embargo``,
    the longest horizon). The fit history ends ``embargo`` rows before the first test
    origin, so every training target lies before the test block.
    """
    n_test = holdout_rows(len(prices), test_fraction)
    first_test = len(prices) - n_test
    origins = prices.index[first_test : len(prices) - embargo]
    return prices.iloc[: first_test - embargo], origins


def train_symbol(
    symbol: str,
    prices: pd.DataFrame,
    config: TrainingConfig,
    work_dir: str | Path,
    on_epoch: EpochCallback | None = None,
) -> TrainingResult:
    """Validate, fit and evaluate one symbol's Mamba forecaster.

    The forecaster is fitted before a held-out test block and scored on it; with
    ``config.refit`` it is then refitted on every price, test block included, so the
    served model has seen the latest years (its test metrics are those of the fit before
    the refit, which never saw the block). Raises ``DataQualityError`` for unusable
    prices and ``TrainingDivergedError`` when the loss becomes NaN.
    """
    started = time.perf_counter()
    if config.pooled:
        raise ValueError(
            "train_symbol fits one network per symbol; a pooled network is fitted on many "
            "symbols at once (models.pooled.PooledNeuralForecaster, backtest --set pooled=true)"
        )
    if config.days is not None:
        prices = prices.iloc[-config.days :]
    validate_price_data(prices, symbol, min_rows=config.min_history())
    fit_prices, origins = holdout(prices, config.test_fraction, max(config.model.horizons))
    forecaster = MambaForecaster(training_config=config).fit(
        fit_prices, symbol=symbol, work_dir=work_dir, on_epoch=on_epoch, refit=False
    )
    quantiles = forecaster.predict_quantiles(prices, origins)  # (n, H, Q)
    test_metrics, test_table = score_test_block(prices, fit_prices, origins, quantiles, forecaster)
    if config.refit:
        forecaster.refit(prices)
    seconds = time.perf_counter() - started
    card = replace(
        forecaster.card,
        training_seconds=seconds,
        split={**forecaster.card.split, "test": span(origins)},
    )
    metrics = {
        "symbol": symbol,
        "version": card.version,
        "epochs": forecaster.history,
        "best_epoch": best_epoch(forecaster.history),
        "stop_reason": forecaster.stop_reason,
        "refit_epochs": card.refit_epochs,  # served model refitted on every price, if set
        "training_seconds": seconds,
        "split": {name: vars(s) for name, s in card.split.items()},
        "test": test_metrics,
        "test_forecasts": test_table,
    }
    logger.info("%s trained in %.1f s (%s)", symbol, seconds, forecaster.stop_reason)
    return TrainingResult(symbol, forecaster.to_bytes(), card.to_dict(), metrics)


def score_test_block(
    prices: pd.DataFrame,
    fit_prices: pd.DataFrame,
    origins: pd.DatetimeIndex,
    quantiles: np.ndarray,
    forecaster: Forecaster,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The test metrics per horizon (against the random walk and the fit history's drift)
    and the per-window forecast table of (n, H, Q) ``quantiles`` made at ``origins``."""
    actual, train_drift = _outcomes(prices, fit_prices, origins, forecaster.horizons)
    metrics = evaluate_forecasts(
        actual, quantiles, forecaster.horizons, forecaster.quantiles, train_drift
    )
    return metrics, _forecast_table(prices, origins, actual, quantiles, forecaster)


def _outcomes(
    prices: pd.DataFrame,
    fit_prices: pd.DataFrame,
    origins: pd.DatetimeIndex,
    horizons: tuple[int, ...],
) -> tuple[np.ndarray, np.ndarray]:
    """Realised log returns at the origins (n, H) and the fit history's mean (H,)."""
    positions = prices.index.get_indexer(origins)
    actual = np.column_stack([forward_log_returns(prices, h)[positions] for h in horizons])
    drift = np.array([np.nanmean(forward_log_returns(fit_prices, h)) for h in horizons])
    return actual.astype(np.float32), drift


def _forecast_table(
    prices: pd.DataFrame,
    origins: pd.DatetimeIndex,
    actual: np.ndarray,
    quantiles: np.ndarray,
    forecaster: Forecaster,
) -> dict[str, Any]:
    """Test-block forecasts vs outcomes, for plots, audits and the parity test."""
    table: dict[str, Any] = {
        "anchor_dates": [str(d.date()) for d in origins],
        "anchor_close": np.round(prices["close"].loc[origins].to_numpy(), 6).tolist(),
    }
    for i, horizon in enumerate(forecaster.horizons):
        table[f"h{horizon}"] = {
            "actual": np.round(actual[:, i], 6).tolist(),
            **{
                f"q{q:g}": np.round(quantiles[:, i, j], 6).tolist()
                for j, q in enumerate(forecaster.quantiles)
            },
        }
    return table
