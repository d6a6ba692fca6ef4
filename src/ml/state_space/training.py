"""Train, evaluate and package the forecaster of one symbol.

``train_symbol`` is a pure-ish job: prices in, a :class:`TrainingResult` out
(model bytes, metadata, metrics). It writes only scratch state under
``work_dir`` (checkpoints, resume state); persisting the artefacts is the
caller's business (:class:`~ml.state_space.registry.ModelRegistry`), so the
same job runs in a local process pool or on a remote Dask worker.
"""

from __future__ import annotations

import json
import logging
import platform
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

import ml.state_space
from ml.state_space.atomic import atomic_write_json
from ml.state_space.augment import DataAugmentor
from ml.state_space.evaluation import evaluate_forecasts
from ml.state_space.features import TimeSeriesFeatureEngineer
from ml.state_space.model import MambaConfig, build_model, compile_model
from ml.state_space.quality import validate_price_data
from ml.state_space.sequences import (
    SequenceGenerator,
    SequenceSplit,
    min_feature_rows,
    split_sequences,
)

logger = logging.getLogger(__name__)

EpochCallback = Callable[[str, dict[str, Any]], None]


@dataclass
class TrainingConfig:
    """Everything that decides a training run besides the data."""

    model: MambaConfig = field(default_factory=MambaConfig)
    epochs: int = 30
    batch_size: int = 64
    days: int | None = 2520
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    early_stopping_patience: int = 6
    lr_patience: int = 2
    lr_factor: float = 0.5
    min_lr: float = 1e-5
    augment: bool = True
    seed: int = 42

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "model": self.model.to_dict()}

    def generator(self) -> SequenceGenerator:
        return SequenceGenerator(seq_len=self.model.seq_len, horizons=self.model.horizons)

    def min_history(self) -> int:
        """Price rows a symbol needs: the feature warm-up plus three embargoed segments."""
        return TimeSeriesFeatureEngineer.warmup + min_feature_rows(
            self.generator(), self.val_fraction, self.test_fraction
        )


@dataclass
class TrainingResult:
    """What one training job hands back: bytes to persist, and their descriptions."""

    symbol: str
    model_bytes: bytes
    metadata: dict[str, Any]
    metrics: dict[str, Any]


def train_symbol(
    symbol: str,
    prices: pd.DataFrame,
    config: TrainingConfig,
    work_dir: str | Path,
    on_epoch: EpochCallback | None = None,
) -> TrainingResult:
    """Validate, featurise, split, fit and evaluate one symbol's model.

    Raises ``DataQualityError`` for unusable prices and ``TrainingDivergedError``
    when the loss becomes NaN.
    """
    started = time.perf_counter()
    keras.utils.set_random_seed(config.seed)
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)

    if config.days is not None:
        prices = prices.iloc[-config.days :]
    quality = validate_price_data(prices, symbol, min_rows=config.min_history())
    engineer = TimeSeriesFeatureEngineer().resolve(prices)
    features = engineer.transform(prices)
    split = split_sequences(
        features,
        prices["close"],
        config.generator(),
        val_fraction=config.val_fraction,
        test_fraction=config.test_fraction,
    )
    model, history, stop_reason = _fit(symbol, split, config, work_dir, on_epoch)
    test_quantiles = _predict_returns(model, split.test.x, split.target_scale)
    test_metrics = evaluate_forecasts(
        split.test.y,
        test_quantiles,
        config.model.horizons,
        config.model.quantiles,
        train_drift=split.train.y.mean(axis=0),
    )
    seconds = time.perf_counter() - started
    metadata = _metadata(symbol, prices, config, engineer, features, split, quality, seconds)
    metrics = {
        "symbol": symbol,
        "version": metadata["version"],
        "epochs": history,
        "best_epoch": _best_epoch(history),
        "stop_reason": stop_reason,
        "training_seconds": seconds,
        "split": _split_summary(split),
        "test": test_metrics,
        "test_forecasts": _forecast_table(split, test_quantiles, config.model),
    }
    logger.info("%s trained in %.1f s (%s)", symbol, seconds, stop_reason)
    return TrainingResult(symbol, _model_bytes(model), metadata, metrics)


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


def _fit(
    symbol: str,
    split: SequenceSplit,
    config: TrainingConfig,
    work_dir: Path,
    on_epoch: EpochCallback | None,
) -> tuple[keras.Model, list[dict[str, Any]], str]:
    model = compile_model(build_model(config.model, split.train.x.shape[-1]), config.model)
    train_batches = TrainingBatches(
        split.train.x,
        split.train.y / split.target_scale,
        config.batch_size,
        DataAugmentor(seed=config.seed) if config.augment else None,
        seed=config.seed,
    )
    epoch_log = _EpochLog(symbol, work_dir / "history.json", on_epoch)
    best_path = work_dir / "best.weights.h5"
    callbacks = [
        keras.callbacks.BackupAndRestore(str(work_dir / "backup")),
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.EarlyStopping(patience=config.early_stopping_patience),
        keras.callbacks.ReduceLROnPlateau(
            factor=config.lr_factor, patience=config.lr_patience, min_lr=config.min_lr
        ),
        keras.callbacks.ModelCheckpoint(
            str(best_path),
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=epoch_log.best_val_loss(),
        ),
        epoch_log,
    ]
    model.fit(
        train_batches,
        validation_data=(split.val.x, split.val.y / split.target_scale),
        validation_batch_size=512,
        epochs=config.epochs,
        callbacks=callbacks,
        verbose=0,
    )
    history = epoch_log.epochs
    if not history or not np.isfinite(history[-1]["loss"]):
        raise TrainingDivergedError(
            f"Training of {symbol} diverged (loss is NaN/inf at epoch {len(history)}). "
            "Try a lower --learning-rate or check the data-quality warnings."
        )
    if best_path.exists():
        model.load_weights(best_path)
    stop_reason = "early_stopping" if len(history) < config.epochs else "max_epochs"
    return model, history, stop_reason


class TrainingBatches(keras.utils.PyDataset):
    """Shuffled training batches, freshly augmented every epoch (seeded, reproducible)."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        batch_size: int,
        augmentor: DataAugmentor | None,
        seed: int,
    ) -> None:
        super().__init__()
        self.x, self.y, self.batch_size, self.augmentor = x, y, batch_size, augmentor
        self._rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        return self._epoch_x[rows], self.y[rows]

    def on_epoch_end(self) -> None:
        self._order = self._rng.permutation(len(self.x))
        self._epoch_x = self.augmentor.augment(self.x) if self.augmentor else self.x


class _EpochLog(keras.callbacks.Callback):
    """Records per-epoch losses, learning rate and time; survives a resume."""

    def __init__(self, symbol: str, path: Path, on_epoch: EpochCallback | None) -> None:
        super().__init__()
        self.symbol = symbol
        self.path = path
        self.on_epoch = on_epoch
        self.epochs: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
        self._epoch_started = 0.0

    def best_val_loss(self) -> float | None:
        losses = [epoch["val_loss"] for epoch in self.epochs if epoch.get("val_loss") is not None]
        return min(losses) if losses else None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        record = {
            "epoch": epoch + 1,
            **{key: float(value) for key, value in logs.items() if key != "learning_rate"},
            "learning_rate": float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
            "seconds": time.perf_counter() - self._epoch_started,
        }
        self.epochs = [e for e in self.epochs if e["epoch"] < record["epoch"]] + [record]
        atomic_write_json(self.path, self.epochs)
        if self.on_epoch is not None:
            self.on_epoch(self.symbol, record)


def _best_epoch(history: list[dict[str, Any]]) -> int | None:
    scored = [e for e in history if e.get("val_loss") is not None and np.isfinite(e["val_loss"])]
    return min(scored, key=lambda e: e["val_loss"])["epoch"] if scored else None


def _predict_returns(model: keras.Model, x: np.ndarray, target_scale: np.ndarray) -> np.ndarray:
    """Quantiles of the forward log return, (n, H, Q), in natural units."""
    scaled = model.predict(x, batch_size=512, verbose=0)
    return scaled * target_scale[None, :, None]


def _model_bytes(model: keras.Model) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        return path.read_bytes()


def _split_summary(split: SequenceSplit) -> dict[str, Any]:
    def describe(windows: Any) -> dict[str, Any]:
        dates = windows.anchor_dates
        return {"windows": len(dates), "first": str(dates[0].date()), "last": str(dates[-1].date())}

    return {
        "train": describe(split.train),
        "val": describe(split.val),
        "test": describe(split.test),
    }


def _forecast_table(
    split: SequenceSplit, quantiles: np.ndarray, model_config: MambaConfig
) -> dict[str, Any]:
    """Test-segment forecasts vs outcomes, for plots and audits."""
    table: dict[str, Any] = {
        "anchor_dates": [str(d.date()) for d in split.test.anchor_dates],
        "anchor_close": np.round(split.test.last_close, 6).tolist(),
    }
    for i, horizon in enumerate(model_config.horizons):
        table[f"h{horizon}"] = {
            "actual": np.round(split.test.y[:, i], 6).tolist(),
            **{
                f"q{q:g}": np.round(quantiles[:, i, j], 6).tolist()
                for j, q in enumerate(model_config.quantiles)
            },
        }
    return table


def _metadata(
    symbol: str,
    prices: pd.DataFrame,
    config: TrainingConfig,
    engineer: TimeSeriesFeatureEngineer,
    features: pd.DataFrame,
    split: SequenceSplit,
    quality: Any,
    seconds: float,
) -> dict[str, Any]:
    trained_at = datetime.now(UTC)
    return {
        "symbol": symbol,
        "version": f"{trained_at:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}",
        "trained_at": trained_at.isoformat(timespec="seconds"),
        "training_seconds": seconds,
        "config": config.to_dict(),
        "features": {
            "engineer": engineer.to_dict(),
            "names": list(features.columns),
            "price_columns": _price_columns(engineer),
        },
        "normalizer": split.normalizer.to_dict(),
        "target_scale": [float(s) for s in split.target_scale],
        "data": {
            "source": prices.attrs.get("source"),
            "first_date": str(prices.index[0].date()),
            "last_date": str(prices.index[-1].date()),
            "rows": len(prices),
        },
        "split": _split_summary(split),
        "data_quality": quality.to_dict(),
        "versions": {
            "package": ml.state_space.__version__,
            "keras": keras.__version__,
            "tensorflow": _tensorflow_version(),
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "python": platform.python_version(),
        },
    }


def _price_columns(engineer: TimeSeriesFeatureEngineer) -> list[str]:
    """Price columns besides ``close`` that the engineer reads; serving must supply them."""
    return ["open", "high", "low"] * bool(engineer.use_ohlc) + ["volume"] * bool(
        engineer.use_volume
    )


def _tensorflow_version() -> str:
    import tensorflow as tf

    return tf.__version__

