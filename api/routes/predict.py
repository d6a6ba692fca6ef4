"""Forecasts: from the latest stored history, from the caller's prices, or for a batch."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, HTTPException
from fastapi.concurrency import run_in_threadpool

from api.deps import ApiKey, ServiceDep, SettingsDep, Symbol
from api.errors import BODY_RESPONSES, ERROR_RESPONSES, classify
from api.schemas import BatchItem, BatchRequest, BatchResponse, ForecastResponse, PriceHistory
from api.service import PredictionService
from ml.state_space.data.symbols import validate_symbol

router = APIRouter(
    prefix="/predict", tags=["predict"], dependencies=[ApiKey], responses=ERROR_RESPONSES
)


@router.get("/{symbol:path}", response_model=ForecastResponse)
async def predict(symbol: Symbol, service: ServiceDep) -> ForecastResponse:
    """Forecast 1, 5, 10 and 30 trading days ahead from the symbol's latest prices."""
    cached = service.cached_forecast(symbol)  # no I/O but stat: fine on the event loop
    if cached is not None:
        return cached
    return await run_in_threadpool(service.forecast, symbol)


@router.post("/{symbol:path}", response_model=ForecastResponse, responses=BODY_RESPONSES)
async def predict_from_prices(
    symbol: Symbol, history: PriceHistory, service: ServiceDep
) -> ForecastResponse:
    """Forecast from a price history you send (oldest first; enough rows for the model)."""
    return await run_in_threadpool(service.forecast_prices, symbol, history)


@router.post("", response_model=BatchResponse, responses=BODY_RESPONSES)
async def predict_batch(
    request: BatchRequest, service: ServiceDep, settings: SettingsDep
) -> BatchResponse:
    """Forecast several symbols; each result carries its own forecast or error."""
    symbols = list(dict.fromkeys(s.strip().upper() for s in request.symbols))
    if len(symbols) > settings.max_batch:
        raise HTTPException(
            status_code=422,
            detail=f"{len(symbols)} distinct symbols in one batch; the limit is "
            f"{settings.max_batch} (MAMBA_API_MAX_BATCH): split the request",
        )
    results = await asyncio.gather(*(_one(service, symbol) for symbol in symbols))
    return BatchResponse(results=list(results))


async def _one(service: PredictionService, symbol: str) -> BatchItem:
    try:
        symbol = validate_symbol(symbol)
        forecast = service.cached_forecast(symbol)
        if forecast is None:
            forecast = await run_in_threadpool(service.forecast, symbol)
    except Exception as error:  # one bad symbol must not fail the batch
        status, body = classify(error)
        return BatchItem(symbol=symbol, status=status, error=body)
    return BatchItem(symbol=symbol, status=200, forecast=forecast)
