"""Shared price-data fixtures: real bundled history, loaded offline."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MAMBA_FORECAST_OFFLINE", "1")  # tests never touch the network

from typing import TYPE_CHECKING

import pandas as pd
import pytest

from ml.state_space.data.sources import load_bundled

if TYPE_CHECKING:
    from ml.state_space.training.config import TrainingConfig


@pytest.fixture
def bundled_prices() -> pd.DataFrame:
    """AAPL adjusted close, 1990-01-02 .. 2022-12-28 (8,313 rows, ``close`` only)."""
    return load_bundled("AAPL")


@pytest.fixture
def ohlcv_prices() -> pd.DataFrame:
    """^GSPC adjusted OHLCV, 1999-01-04 .. 2018-12-31 (5,031 rows)."""
    return load_bundled("^GSPC")


def tiny_training_config(**overrides) -> TrainingConfig:
    """A model small enough to train in seconds, on the last 700 days."""
    from dataclasses import replace

    from ml.state_space.models.mamba.model import MambaConfig
    from ml.state_space.training.config import TrainingConfig

    model = replace(
        MambaConfig(),
        d_model=16,
        n_layers=1,
        d_state=8,
        head_dim=8,
        seq_len=20,
        horizons=(1, 5),
        chunk_size=10,
        jit_compile=False,  # XLA compiles for ~30 s; tiny models run faster without it
    )
    return replace(TrainingConfig(model=model, epochs=2, days=700, batch_size=64), **overrides)


@pytest.fixture
def tiny_config():
    return tiny_training_config()
