"""Shared fixtures: real bundled history (loaded offline), tiny configs, a local Dask cluster."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("MAMBA_FORECAST_OFFLINE", "1")  # tests never touch the network

from typing import TYPE_CHECKING

import pandas as pd
import pytest

from ml.state_space.data.sources import load_bundled

if TYPE_CHECKING:
    from ml.state_space.models.config import TrainingConfig


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow end-to-end tests first: with ``--dist loadfile`` each file runs on one
    worker, in this order, so the longest files start while the short ones fill the gaps."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def bundled_prices() -> pd.DataFrame:
    """AAPL adjusted close, 1990-01-02 .. 2022-12-28 (8,313 rows, ``close`` only)."""
    return load_bundled("AAPL", dataset="sp500-20")


@pytest.fixture
def ohlcv_prices() -> pd.DataFrame:
    """^GSPC adjusted OHLCV, 1999-01-04 .. 2018-12-31 (5,031 rows)."""
    return load_bundled("^GSPC")


def tiny_training_config(**overrides) -> TrainingConfig:
    """A model small enough to train in seconds, on the last 700 days."""
    from dataclasses import replace

    from ml.state_space.models.config import TrainingConfig
    from ml.state_space.models.mamba.model import MambaConfig

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


UNIVERSE_FITTED, UNIVERSE_UNSEEN = ("AAPL", "KO", "XOM"), "MSFT"


def tiny_universe_config(**overrides) -> TrainingConfig:
    """The universe network's configuration, tiny: one pooled network over OHLCV inputs
    through one normaliser for all, sampled epochs, no refit."""
    settings = {
        "pooled": True,
        "pooled_normalizer": "global",
        "pooled_ohlcv": True,
        "windows_per_epoch": 128,
        "supervised_steps": 5,
        "refit": False,
    }
    return tiny_training_config(**(settings | overrides))


def universe_histories() -> dict[str, pd.DataFrame]:
    """Bundled OHLCV up to 2019 of the tiny universe's fitted symbols and its unseen one."""
    return {s: load_bundled(s).loc[:"2019-12-31"] for s in (*UNIVERSE_FITTED, UNIVERSE_UNSEEN)}


@pytest.fixture(scope="session")
def universe_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry root (read-only) holding a tiny universe network fitted on
    :data:`UNIVERSE_FITTED` (``scripts/train_universe_model.py``'s job): a version per
    fitted symbol and the shared network."""
    from ml.state_space.registry import SHARED_NAME, ModelRegistry
    from ml.state_space.training.universe_trainer import train_universe

    histories = universe_histories()
    result = train_universe({s: histories[s] for s in UNIVERSE_FITTED}, tiny_universe_config())
    registry = ModelRegistry(tmp_path_factory.mktemp("universe") / "models")
    for member in result.members:
        registry.save(member.symbol, member.model_bytes, member.metadata, member.metrics)
    shared = result.shared
    registry.shared().save(SHARED_NAME, shared.model_bytes, shared.metadata, shared.metrics)
    return registry.root


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def dask_cluster(tmp_path):
    """A real scheduler and one worker on 127.0.0.1, started as the CLI would."""
    dask = shutil.which("dask", path=str(Path(sys.executable).parent))
    if dask is None:
        pytest.skip("dask CLI not installed")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen(
        [dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = subprocess.Popen(
        [
            dask,
            "worker",
            address,
            "--nworkers",
            "1",
            "--nthreads",
            "1",
            "--no-dashboard",
            "--local-directory",
            str(tmp_path / "dask-worker"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_worker(address)
        yield address
    finally:
        for process in (worker, scheduler):
            process.terminate()
            process.wait(timeout=30)


def _wait_for_worker(address: str, timeout: float = 60.0) -> None:
    from distributed import Client

    deadline = time.monotonic() + timeout
    with Client(address, timeout=timeout) as client:
        while not client.scheduler_info()["workers"]:
            if time.monotonic() > deadline:
                raise TimeoutError("Dask worker did not register")
            time.sleep(0.5)
