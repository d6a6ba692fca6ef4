"""API fixtures: two real tiny models trained once per session, and app/client factories.

AAPL (bundled: close only) and ^GSPC (bundled: OHLCV) exercise both feature paths.
Every app runs offline against an empty price cache, so tests never touch the network
or a developer's ``~/.cache``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from api.settings import Settings
from ml.state_space.data.sources import load_history
from ml.state_space.models.config import TrainingConfig
from ml.state_space.models.mamba.model import MambaConfig
from ml.state_space.registry import ModelRegistry
from ml.state_space.training.trainer import train_symbol

SYMBOLS = ("AAPL", "^GSPC")
TINY = TrainingConfig(
    model=replace(
        MambaConfig(), d_model=16, n_layers=1, d_state=8, head_dim=16, seq_len=30, jit_compile=False
    ),
    epochs=1,
    days=1000,  # just above TINY.min_history(): every split segment holds a window
    augment=False,
)


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry root holding tiny AAPL and ^GSPC models (read-only: copy before mutating)."""
    root = tmp_path_factory.mktemp("trained")
    registry = ModelRegistry(root / "models")
    for symbol in SYMBOLS:
        prices = load_history(symbol, offline=True, cache_dir=root / "no-cache")
        result = train_symbol(symbol, prices, TINY, root / "work" / symbol)
        registry.save(result.symbol, result.model_bytes, result.metadata, result.metrics)
    return registry.root


@pytest.fixture
def models_dir(trained_models: Path, tmp_path: Path) -> Path:
    """A private copy of the trained models that a test may change."""
    return Path(shutil.copytree(trained_models, tmp_path / "models"))


@pytest.fixture
def make_app(models_dir: Path, tmp_path: Path) -> Callable[..., FastAPI]:
    """``make_app(**settings)`` -> an offline app on this test's models."""

    def factory(**overrides: Any) -> FastAPI:
        values: dict[str, Any] = {
            "models_dir": models_dir,
            "offline": True,
            "cache_dir": tmp_path / "price-cache",
            **overrides,
        }
        return create_app(Settings(**values))

    return factory


@pytest.fixture
def client(make_app: Callable[..., FastAPI]) -> Iterator[TestClient]:
    """A started (lifespan run) client with default settings."""
    with TestClient(make_app()) as test_client:
        yield test_client


@pytest.fixture
def registry(models_dir: Path) -> ModelRegistry:
    return ModelRegistry(models_dir)


@pytest.fixture
def api_key() -> str:
    return "test-key-0123456789abcdef"
