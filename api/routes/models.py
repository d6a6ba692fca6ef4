"""Which models exist, and what each was trained on and scored."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter

from api.deps import ApiKey, ServiceDep, Symbol
from api.errors import ERROR_RESPONSES
from api.schemas import (
    BacktestFigures,
    BrokenModel,
    ModelDetail,
    ModelList,
    ModelSummary,
    UniverseSummary,
)
from api.service import PredictionService
from ml.state_space.forecast import published_backtest
from ml.state_space.registry import SHARED_NAME, CorruptArtifactError, ModelNotFoundError

logger = logging.getLogger(__name__)

router = APIRouter(
    prefix="/models", tags=["models"], dependencies=[ApiKey], responses=ERROR_RESPONSES
)

HEAVY_METRICS = ("test_forecasts",)  # per-window forecast table: for audits, not for an API


@router.get("", response_model=ModelList)
def list_models(service: ServiceDep) -> ModelList:
    """Every symbol with a model on disk: version, training date, data range."""
    summaries, broken = [], []
    for symbol in service.registry.symbols():
        try:
            summaries.append(ModelSummary.from_metadata(service.registry.load_metadata(symbol)))
        except ModelNotFoundError:  # deleted between listing and reading
            logger.info("model %s vanished while listing", symbol)
        except (CorruptArtifactError, KeyError, TypeError, ValueError) as error:
            logger.warning("model %s is unreadable: %s", symbol, error)
            broken.append(BrokenModel(symbol=symbol, message=str(error)))
    return ModelList(models=summaries, broken=broken, universe=_universe(service))


def _universe(service: PredictionService) -> UniverseSummary | None:
    """The universe network's summary, if the directory holds a readable one."""
    shared = service.universe.registry
    if not shared.has_model(SHARED_NAME):
        return None
    try:
        metadata, metrics = shared.load_metadata(SHARED_NAME), shared.load_metrics(SHARED_NAME)
    except (ModelNotFoundError, CorruptArtifactError) as error:
        logger.warning("the universe network is unreadable: %s", error)
        return None
    summary = ModelSummary.from_metadata(metadata)
    return UniverseSummary(**summary.model_dump(), fitted_symbols=len(metrics.get("symbols", [])))


@router.get("/{symbol:path}", response_model=ModelDetail)
def model_detail(symbol: Symbol, service: ServiceDep) -> ModelDetail:
    """One model's metadata, held-out test metrics (without the per-window table) and the
    versions kept for rollback."""
    metadata = service.registry.load_metadata(symbol)
    try:
        metrics = service.registry.load_metrics(symbol)
    except (ModelNotFoundError, CorruptArtifactError) as error:
        logger.warning("%s: no metrics shown: %s", symbol, error)
        metrics = {}
    light = {key: value for key, value in metrics.items() if key not in HEAVY_METRICS}
    summary = ModelSummary.from_metadata(metadata)
    backtest = _backtest(service.registry.load_backtest(), metadata)
    return ModelDetail(
        **summary.model_dump(),
        metadata=metadata,
        metrics=light,
        backtest=backtest,
        versions=service.registry.versions(symbol),
    )


def _backtest(
    published: dict[str, Any] | None, metadata: dict[str, Any]
) -> dict[str, BacktestFigures] | None:
    """The published walk-forward figures of this model's family and symbol, per horizon."""
    figures, years = published_backtest(
        published, metadata.get("family", ""), metadata["symbol"], metadata.get("config", {})
    )
    if not figures:
        return None
    return {key: BacktestFigures.from_figures(f, years) for key, f in figures.items()}
