"""Shared dependencies as ``Annotated`` aliases: service, settings, symbol, API key.

They are ``async def`` on purpose: none blocks, and FastAPI would run a plain ``def``
dependency in the threadpool, costing a thread hand-off per dependency per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, Security
from fastapi.security import APIKeyHeader

from api.edge import API_KEY_HEADER, key_matches
from api.service import PredictionService
from api.settings import Settings
from ml.state_space.data.symbols import validate_symbol

_api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False)


async def get_service(request: Request) -> PredictionService:
    return request.app.state.service


async def get_settings(request: Request) -> Settings:
    return request.app.state.service.settings


ServiceDep = Annotated[PredictionService, Depends(get_service)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def require_api_key(
    settings: SettingsDep, api_key: Annotated[str | None, Security(_api_key_header)]
) -> None:
    """401 unless no key is configured or ``X-API-Key`` matches it (constant-time compare)."""
    if not key_matches(settings.api_key, api_key):
        raise HTTPException(
            status_code=401,
            detail=f"missing or wrong API key: send it in the {API_KEY_HEADER} header",
            headers={"WWW-Authenticate": API_KEY_HEADER},
        )


async def symbol_path(
    symbol: Annotated[str, Path(description="ticker, e.g. AAPL, BRK-B, ^GSPC (case-insensitive)")],
) -> str:
    """The path's symbol, normalised; ``InvalidSymbolError`` (422) if malformed."""
    return validate_symbol(symbol)


Symbol = Annotated[str, Depends(symbol_path)]
ApiKey = Depends(require_api_key)
