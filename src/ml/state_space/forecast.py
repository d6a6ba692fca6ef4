"""Serving-side forecasts: one loaded model version, through the fitted pipeline.

A :class:`ServedModel` wraps the forecaster rebuilt from a registry version (model bytes +
model card: a :class:`~ml.state_space.models.neural.NeuralForecaster` for the networks, a
:class:`~ml.state_space.models.gbm.GBMSeriesForecaster` for LightGBM) and the test skill
per horizon, so callers can see how far to trust each forecast. Features, normalisation,
inference and target dates are the pipeline's own: serving cannot drift from training.

Where the model has not shown skill (its published walk-forward backtest says it does
not beat the baseline or, without one, its validation blend gave it no weight), the
``unskilled`` policy decides what a horizon serves: ``blend`` (default) the forecast as
trained and backtested, ``baseline`` the model's fallback (``models.fallback``: the drift
with a GARCH band by default), ``model`` the network (or LightGBM) alone, with a warning.

A :class:`UniverseNetwork` is the universe network's shared version: it forecasts a
symbol it was never fitted on from that symbol's history, gated on the symbol's own
latest windows, with the backtest figures published for held-out symbols.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any, Literal

import pandas as pd

from ml.state_space.data.artefacts import MEDIAN_DAYS, audit
from ml.state_space.models.card import ModelCard
from ml.state_space.models.config import TrainingConfig
from ml.state_space.models.families import family
from ml.state_space.models.gbm import GlobalQuantileGBM
from ml.state_space.models.pooled import PooledNeuralForecaster
from ml.state_space.models.servable import InsufficientHistoryError, Servable, Variant
from ml.state_space.registry import ModelArtifacts

logger = logging.getLogger(__name__)

UnskilledPolicy = Literal["blend", "baseline", "model"]


@dataclass(frozen=True)
class HorizonForecast:
    horizon: int
    target_date: str
    log_return: dict[str, float]
    price: dict[str, float]
    test_skill_vs_random_walk: float | None
    backtest: dict[str, Any] | None = None
    backtest_years: list[int] | None = None
    model_weight: float | None = None  # the model's share after the validation blend
    serves: str = "model"  # model | blend | baseline
    baseline: str = "rw"  # the fallback the blend and "baseline" use (models.fallback)
    warning: str | None = None


#: Bars of a forecast's input window the artefact audit checks (the network's seq_len).
INPUT_WINDOW = 60


@dataclass(frozen=True)
class Forecast:
    symbol: str
    as_of: str
    last_close: float
    source: str | None
    model_version: str
    trained_at: str
    horizons: list[HorizonForecast]
    data_warning: str | None = None  # artefacts in the input window (data.artefacts)
    unseen: bool = False  # forecast by the universe network for a symbol it never fitted


def input_window_warning(symbol: str, prices: pd.DataFrame) -> str | None:
    """What the artefact audit finds in the last :data:`INPUT_WINDOW` bars, or ``None``."""
    found = audit(symbol, prices.iloc[-(INPUT_WINDOW + MEDIAN_DAYS) :])
    first = prices.index[-min(INPUT_WINDOW, len(prices))]
    recent = [a for a in found if pd.Timestamp(a.date) >= first]
    if not recent:
        return None
    shown = ", ".join(f"{a.date} {a.kind}" for a in recent[:5])
    more = f" and {len(recent) - 5} more" if len(recent) > 5 else ""
    return (
        f"the last {INPUT_WINDOW} bars hold {shown}{more}: bars that are not what traded, "
        "so this forecast may be off (docs/DATA.md, real-data artefacts)"
    )


def published_backtest(
    backtest: dict[str, Any] | None,
    family: str,
    symbol: str,
    config: dict[str, Any],
    unseen: bool = False,
) -> tuple[dict[str, Any], list[int] | None]:
    """``(figures per "h<horizon>", [first, last] test year)`` that a published backtest
    file holds for this model family, symbol and training configuration (``config``, the
    model card's), or with ``unseen`` those of the symbols its global models were not
    fitted on; ``({}, None)`` when it holds none: figures of another configuration would
    describe another model."""
    if not backtest or backtest.get("model") != family:
        return {}, None
    published = backtest.get("symbols", {}).get(symbol, {})
    figures = backtest.get("unseen", {}) if unseen else published
    if figures and not same_training(backtest.get("training"), config, family):
        logger.warning(
            "%s: the published backtest (%s) trained another configuration than this model; "
            "its figures are withheld until a backtest of this configuration is published",
            symbol,
            backtest.get("command"),
        )
        return {}, None
    return figures, (backtest.get("years") if figures else None)


def same_training(published: dict[str, Any] | None, config: dict[str, Any], family: str) -> bool:
    """Whether two training configurations of ``family`` fit the same model, seeds aside."""
    gbm = family == GlobalQuantileGBM.name
    parse = GlobalQuantileGBM.from_dict if gbm else TrainingConfig.from_dict
    try:
        first, second = (parse(c).to_dict() for c in (published, config))
    except (TypeError, ValueError, AttributeError, KeyError):  # absent (older files), malformed
        return False
    first.pop("seed"), second.pop("seed")
    return first == second


def rebuild(model_bytes: bytes, card: ModelCard) -> Servable:
    """The fitted forecaster a registry version holds, by its card's family."""
    rebuilt = family(card.family).rebuild
    if rebuilt is None:
        raise ValueError(f"the {card.family!r} family is not stored in a registry")
    return rebuilt(model_bytes, card)


class ServedModel:
    """One loaded model version, ready to forecast from a price frame."""

    def __init__(
        self,
        model: Servable,
        test_skill: dict[str, Any],
        backtest: dict[str, Any] | None = None,
        unskilled: UnskilledPolicy = "blend",
        unseen: bool = False,
    ) -> None:
        """``backtest``: the published backtest file's content (all symbols), or ``None``;
        ``unskilled``: what a horizon without demonstrated skill serves (module doc);
        ``unseen``: the model is the universe network, never fitted on this symbol."""
        self.model = model
        self.card: ModelCard = model.card
        self.test_skill = test_skill
        self.unseen = unseen
        self.backtest, self.backtest_years = published_backtest(
            backtest, self.card.family, self.card.symbol, self.card.config, unseen
        )
        self.price_columns = ["close", *self.card.features.price_columns]
        self.model_weights = model.model_weights()
        self.variants: dict[int, Variant] = {}
        self.warnings: dict[int, str] = {}
        if unskilled != "blend":
            for horizon in model.horizons:
                reason = self.missing_skill(horizon)
                if reason is None:
                    continue
                self.variants[horizon] = unskilled
                if unskilled == "model":
                    self.warnings[horizon] = f"the {self.card.family} model alone, though {reason}"
        model.warm_up()  # compile inference now, not on the first request

    def missing_skill(self, horizon: int) -> str | None:
        """Why the model has shown no skill at ``horizon``; ``None`` if it has (or no
        evidence says otherwise)."""
        figures = self.backtest.get(f"h{horizon}")
        if figures is not None:
            if figures.get("beats_baseline"):
                return None
            first, last = self.backtest_years
            return f"it did not beat the baseline in the walk-forward backtest {first}-{last}"
        if self.model_weights.get(horizon) == 0.0:
            return "it showed no significant skill over the baseline on validation"
        return None

    @classmethod
    def from_artifacts(
        cls,
        artifacts: ModelArtifacts,
        test_skill: dict[str, Any],
        backtest: dict[str, Any] | None = None,
        unskilled: UnskilledPolicy = "blend",
    ) -> ServedModel:
        card = ModelCard.from_dict(artifacts.metadata)
        return cls(rebuild(artifacts.model_bytes, card), test_skill, backtest, unskilled)

    @property
    def history_rows(self) -> int:
        """Rows of history the forecast from the last row depends on."""
        return self.model.history_rows

    def predict(self, prices: pd.DataFrame, symbol: str | None = None) -> Forecast:
        """Forecast every horizon from the end of ``prices``."""
        frame = self.model.predict(prices, self.variants)
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
                    serves=row["serves"],
                    baseline=self.model.baseline_name,
                    warning=self.warnings.get(int(horizon)),
                )
                for horizon, row in frame.iterrows()
            ],
            data_warning=input_window_warning(symbol or self.card.symbol, prices),
            unseen=self.unseen,
        )


class UniverseNetwork:
    """The universe network's shared version, ready to forecast any symbol's history."""

    def __init__(
        self,
        network: PooledNeuralForecaster,
        card: ModelCard,
        backtest: dict[str, Any] | None = None,
        unskilled: UnskilledPolicy = "blend",
    ) -> None:
        self.network, self.card = network, card
        self.backtest, self.unskilled = backtest, unskilled

    @classmethod
    def from_artifacts(
        cls,
        artifacts: ModelArtifacts,
        test_skill: dict[str, Any],
        backtest: dict[str, Any] | None = None,
        unskilled: UnskilledPolicy = "blend",
    ) -> UniverseNetwork:
        """``test_skill`` is the fitted symbols' and does not describe an unseen one."""
        card = ModelCard.from_dict(artifacts.metadata)
        network = PooledNeuralForecaster.from_shared(artifacts.model_bytes, card)
        return cls(network, card, backtest, unskilled)

    @property
    def history_rows(self) -> int:
        """Rows of history an unseen symbol needs: the network gates itself on the
        symbol's own validation windows, as a fit would."""
        return self.network.config.min_history(0.0)

    def served_for(self, symbol: str, prices: pd.DataFrame) -> ServedModel:
        """The universe network gated on ``symbol``'s ``prices``, as this version."""
        needed = ["close", *self.card.features.price_columns]
        missing = [column for column in needed if column not in prices.columns]
        if missing:
            raise InsufficientHistoryError(
                f"The universe network forecasts from columns {needed}; the {symbol} price "
                f"history lacks {missing}."
            )
        member = self.network.for_series(symbol, prices)
        card = self.card
        member.card = replace(member.card, version=card.version, trained_at=card.trained_at)
        return ServedModel(member, {}, self.backtest, self.unskilled, unseen=True)

    def predict(self, prices: pd.DataFrame, symbol: str) -> Forecast:
        """Forecast every horizon from the end of ``prices`` of a symbol never fitted on."""
        return self.served_for(symbol, prices).predict(prices, symbol)
