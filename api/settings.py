"""Service settings from ``MAMBA_API_*`` environment variables, validated at start-up."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ml.state_space.registry import DEFAULT_ROOT

MIN_API_KEY_LENGTH = 16
MAX_BATCH_LIMIT = 100  # hard cap in the request schema; ``max_batch`` may only lower it


class Settings(BaseSettings):
    """Everything the service reads from its environment (prefix ``MAMBA_API_``)."""

    # hide_input_in_errors: a rejected API key must not be echoed into logs
    model_config = SettingsConfigDict(
        env_prefix="MAMBA_API_", frozen=True, extra="ignore", hide_input_in_errors=True
    )

    models_dir: Path = Field(DEFAULT_ROOT, description="registry root with weights/ metadata/")
    offline: bool | None = Field(
        None, description="never fetch from Yahoo; unset = follow MAMBA_FORECAST_OFFLINE"
    )
    cache_dir: Path | None = Field(None, description="parquet price cache (data layer default)")
    prices_file: Path | None = Field(
        None,
        description="your own daily prices (CSV, CSV.gz or Parquet, as --prices of the "
        "scripts); its symbols are served from it and nowhere else",
    )
    model_cache_size: int = Field(32, ge=1, le=1024, description="models kept loaded (LRU)")
    history_ttl_s: float = Field(
        60.0, ge=0, le=86_400, description="seconds a symbol's price history is reused; 0 = never"
    )
    compute_threads: int = Field(
        1, ge=1, le=64, description="forecasts computed at once; others queue (see PERFORMANCE)"
    )
    unskilled_forecast: Literal["blend", "baseline", "model"] = Field(
        "blend",
        description="what a horizon whose network has not beaten the baseline serves: the "
        "forecast as trained and backtested (blend), the model's baseline (baseline), or "
        "the network alone with a warning (model)",
    )
    max_body_bytes: int = Field(
        4 * 2**20,
        ge=1024,
        le=256 * 2**20,
        description="largest request body; bigger ones get 413 before they are read",
    )
    body_timeout_s: float = Field(
        10.0, gt=0, le=600, description="a request body that stalls this long gets 408"
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        le=600,
        description="a request line and headers that take longer than this to arrive close "
        "the connection (``python -m api`` only: uvicorn's own CLI has no such timeout)",
    )
    max_batch: int = Field(20, ge=1, le=MAX_BATCH_LIMIT, description="symbols per POST /predict")
    log_level: str = Field("INFO", description="level of the api.* and ml.* loggers")
    api_key: SecretStr | None = Field(
        None, description="when set, every route but /health and /ready needs X-API-Key"
    )

    @field_validator("models_dir")
    @classmethod
    def _models_dir_is_not_a_file(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(f"models_dir {str(value)!r} exists but is not a directory")
        return value

    @field_validator("log_level")
    @classmethod
    def _known_log_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in logging.getLevelNamesMapping():
            raise ValueError(f"log_level {value!r} is not one of DEBUG, INFO, WARNING, ERROR")
        return level

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_means_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("api_key")
    @classmethod
    def _key_is_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_API_KEY_LENGTH:
            raise ValueError(
                f"api_key must have at least {MIN_API_KEY_LENGTH} characters "
                "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        return value
