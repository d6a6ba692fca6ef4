"""Serving-side forecasts: one loaded model version, through the fitted pipeline.

A :class:`ServedModel` wraps the :class:`~ml.state_space.models.neural.NeuralForecaster`
rebuilt from a registry version (network bytes + model card) and the test skill per
horizon, so callers can see how far to trust each forecast. Features, normalisation,
inference and target dates are the pipeline's own: serving cannot drift from training.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ml.state_space.models.card import ModelCard
from ml.state_space.models.neural import NeuralForecaster
from ml.state_space.registry import ModelArtifacts

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HorizonForecast:
    horizon: int
    target_date: str
    log_return: dict[str, float]
    price: dict[str, float]
    test_skill_vs_random_walk: float | None
    backtest: dict[str, Any] | None = None
    backtest_years: list[int] | None = None
    model_weight: float | None = None  # network's share after the validation blend


@dataclass(frozen=True)
class Forecast:
    symbol: str
    as_of: str
    last_close: float
    source: str | None
    model_version: str
    trained_at: str
    horizons: list[HorizonForecast]


def published_backtest(
    backtest: dict[str, Any] | None, family: str, symbol: str
) -> tuple[dict[str, Any], list[int] | None]:
    """``(figures per "h<horizon>", [first, last] test year)`` that a published backtest
    file holds for this model family and symbol; ``({}, None)`` when it holds none."""
    if not backtest or backtest.get("model") != family:
        return {}, None
    figures = backtest.get("symbols", {}).get(symbol, {})
    return figures, (backtest.get("years") if figures else None)


class ServedModel:
    """One loaded model version, ready to forecast from a price frame."""

    def __init__(
        self,
        model: NeuralForecaster,
        test_skill: dict[str, Any],
        backtest: dict[str, Any] | None = None,
    ) -> None:
        """``backtest``: the published backtest file's content (all symbols), or ``None``."""
        self.model = model
        self.card: ModelCard = model.card
        self.test_skill = test_skill
        self.backtest, self.backtest_years = published_backtest(
            backtest, self.card.family, self.card.symbol
        )
        self.price_columns = ["close", *self.card.features.price_columns]
        correction = model.correction
        self.model_weights: dict[int, float] = (
            dict(zip(model.horizons, correction.blend_weight, strict=True)) if correction else {}
        )
        model.warm_up()  # compile inference now, not on the first request

    @classmethod
    def from_artifacts(
        cls,
        artifacts: ModelArtifacts,
        test_skill: dict[str, Any],
        backtest: dict[str, Any] | None = None,
    ) -> ServedModel:
        card = ModelCard.from_dict(artifacts.metadata)
        return cls(NeuralForecaster.from_bytes(artifacts.model_bytes, card), test_skill, backtest)

    @property
    def history_rows(self) -> int:
        """Rows of history the forecast from the last row depends on."""
        return self.model.history_rows

    def predict(self, prices: pd.DataFrame, symbol: str | None = None) -> Forecast:
        """Forecast every horizon from the end of ``prices``."""
        frame = self.model.predict(prices)
        levels = [f"{q:g}" for q in self.model.quantiles]
        return Forecast(
            symbol=symbol or self.card.symbol,
            as_of=str(frame.attrs["as_of"].date()),
            last_close=frame.attrs["last_close"],
            source=frame.attrs["source"],
            model_version=self.card.version,
            trained_at=self.card.trained_at,
            horizons=[
                HorizonForecast(
                    horizon=int(horizon),
                    target_date=str(row["target_date"].date()),
                    log_return={q: float(row[f"q{q}"]) for q in levels},
                    price={q: float(row[f"price_q{q}"]) for q in levels},
                    test_skill_vs_random_walk=self.test_skill.get(f"h{horizon}", {}).get(
                        "skill_vs_random_walk"
                    ),
                    backtest=self.backtest.get(f"h{horizon}"),
                    backtest_years=self.backtest_years,
                    model_weight=self.model_weights.get(int(horizon)),
                )
                for horizon, row in frame.iterrows()
            ],
        )
