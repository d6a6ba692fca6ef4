"""Serving-side forecasts from a trained model, with training's own feature code.

A :class:`Forecaster` holds one model version: the Keras model wrapped in a
compiled ``tf.function``, the feature engineer and normaliser rebuilt from the
metadata, and the test skill per horizon so callers can see how far to trust it.
"""

from __future__ import annotations

import functools
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from pandas.tseries.holiday import USFederalHolidayCalendar

import ml.state_space.model  # noqa: F401  (registers the custom layers load_model needs)
from ml.state_space.features import TimeSeriesFeatureEngineer
from ml.state_space.registry import ModelArtifacts
from ml.state_space.sequences import Normalizer, latest_window

logger = logging.getLogger(__name__)

TRADING_DAY = pd.offsets.CustomBusinessDay(calendar=USFederalHolidayCalendar())


class InsufficientHistoryError(ValueError):
    """Too little (or unsuitable) price history to compute a forecast."""


@dataclass(frozen=True)
class HorizonForecast:
    horizon: int
    target_date: str
    log_return: dict[str, float]
    price: dict[str, float]
    test_skill_vs_random_walk: float | None


@dataclass(frozen=True)
class Forecast:
    symbol: str
    as_of: str
    last_close: float
    source: str | None
    model_version: str
    trained_at: str
    horizons: list[HorizonForecast]


class Forecaster:
    """One loaded model version, ready to forecast from a price frame."""

    def __init__(self, model: keras.Model, metadata: dict[str, Any], test_skill: dict[str, Any]):
        self.metadata = metadata
        model_config = metadata["config"]["model"]
        self.seq_len: int = model_config["seq_len"]
        self.horizons: list[int] = list(model_config["horizons"])
        self.quantiles: list[float] = list(model_config["quantiles"])
        self.engineer = TimeSeriesFeatureEngineer.from_dict(metadata["features"]["engineer"])
        self.feature_names: list[str] = metadata["features"]["names"]
        self.price_columns: list[str] = metadata["features"]["price_columns"]
        self.normalizer = Normalizer.from_dict(metadata["normalizer"])
        self.target_scale = np.asarray(metadata["target_scale"], dtype=np.float32)
        self.test_skill = test_skill
        spec = tf.TensorSpec((None, self.seq_len, len(self.feature_names)), tf.float32)
        # a partial, not a lambda: TF's retracing warning counts traces per code object,
        # and every Forecaster's lambda would share one
        self._infer = tf.function(
            functools.partial(model, training=False),
            input_signature=[spec],
            jit_compile=bool(model_config.get("jit_compile", True)),  # XLA: ~5x faster on CPU
        )
        self._infer(tf.zeros((1, self.seq_len, len(self.feature_names))))  # trace once, now

    @classmethod
    def from_artifacts(cls, artifacts: ModelArtifacts, test_skill: dict[str, Any]) -> Forecaster:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "model.keras"
            path.write_bytes(artifacts.model_bytes)
            model = keras.saving.load_model(path, compile=False)
        return cls(model, artifacts.metadata, test_skill)

    @property
    def history_rows(self) -> int:
        """Rows of history the features of the last window depend on."""
        return self.engineer.history_rows(self.seq_len)

    def predict(self, prices: pd.DataFrame, symbol: str | None = None) -> Forecast:
        """Forecast every horizon from the end of ``prices``."""
        symbol = symbol or self.metadata["symbol"]
        self._check_history(prices, symbol)
        tail = prices.iloc[-self.history_rows :]  # a view; the engineer reads only its columns
        try:
            features = self.engineer.transform(tail)
            if list(features.columns) != self.feature_names:
                features = features[self.feature_names]
            window = latest_window(self.normalizer.transform(features), self.seq_len)
        except ValueError as error:  # non-positive prices, non-finite features, ...
            raise InsufficientHistoryError(f"{symbol}: unusable price history: {error}") from error
        scaled = self._infer(tf.constant(window)).numpy()[0]  # (H, Q)
        log_returns = scaled * self.target_scale[:, None]
        as_of = prices.index[-1]
        last_close = float(prices["close"].iloc[-1])
        return Forecast(
            symbol=symbol,
            as_of=str(as_of.date()),
            last_close=last_close,
            source=prices.attrs.get("source"),
            model_version=self.metadata["version"],
            trained_at=self.metadata["trained_at"],
            horizons=[
                self._horizon(h, as_of, last_close, log_returns[i])
                for i, h in enumerate(self.horizons)
            ],
        )

    def _horizon(
        self, horizon: int, as_of: pd.Timestamp, last_close: float, log_returns: np.ndarray
    ) -> HorizonForecast:
        labels = [f"{q:g}" for q in self.quantiles]
        log_returns = log_returns.astype(np.float64)  # exp in float64: prices exact to the cent
        skill = self.test_skill.get(f"h{horizon}", {}).get("skill_vs_random_walk")
        return HorizonForecast(
            horizon=horizon,
            target_date=str((as_of + horizon * TRADING_DAY).date()),
            log_return=dict(zip(labels, log_returns.tolist(), strict=True)),
            price=dict(zip(labels, (last_close * np.exp(log_returns)).tolist(), strict=True)),
            test_skill_vs_random_walk=skill,
        )

    def _check_history(self, prices: pd.DataFrame, symbol: str) -> None:
        missing = [c for c in ("close", *self.price_columns) if c not in prices.columns]
        if missing:
            raise InsufficientHistoryError(
                f"The {symbol} model was trained with columns {['close', *self.price_columns]}; "
                f"the price history lacks {missing}."
            )
        if len(prices) < self.history_rows:
            raise InsufficientHistoryError(
                f"{symbol}: {len(prices)} rows of history given, the model needs at least "
                f"{self.history_rows} (feature warm-up + a {self.seq_len}-day window)."
            )
