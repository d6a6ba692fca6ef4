"""Every model family by name: how to make one, how it is fitted, how a served one is rebuilt.

The one place the CLI, the backtest and the service look a family up. A ``neural``
family is fitted per series (or, with ``TrainingConfig.pooled``, one network for all);
a ``global`` one on every series at once (``fit_many``, then ``for_series``); a
``baseline`` needs no training worth seeding. A family with ``served`` is trained for
the service: its backtest figures are published next to its models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from ml.state_space.models.base import Forecaster
from ml.state_space.models.baselines import Drift, EmpiricalQuantiles, RandomWalk
from ml.state_space.models.card import ModelCard
from ml.state_space.models.config import TrainingConfig
from ml.state_space.models.garch import DriftGarch, DriftGarchFHS, Garch
from ml.state_space.models.gbm import GBMConfig, GBMSeriesForecaster, GlobalQuantileGBM
from ml.state_space.models.lstm import LSTMForecaster
from ml.state_space.models.mamba.forecaster import MambaForecaster
from ml.state_space.models.mingru import MinGRUForecaster
from ml.state_space.models.neural import NeuralForecaster
from ml.state_space.models.pooled import PooledNeuralForecaster
from ml.state_space.models.servable import Servable

__all__ = ["FAMILIES", "Family", "family"]

Kind = Literal["neural", "global", "baseline"]
Maker = Callable[[TrainingConfig, GBMConfig, int], Forecaster]


@dataclass(frozen=True)
class Family:
    """A model family: its name, how it is fitted, a factory of unfitted forecasters
    (``make(training, gbm, seed)``: horizons and quantiles are the training config's),
    and, for families the registry stores, how a stored version is rebuilt."""

    name: str
    kind: Kind
    make: Maker
    rebuild: Callable[[bytes, ModelCard], Servable] | None = None
    served: bool = False

    @property
    def seeded(self) -> bool:
        """Whether seeds change its fit (several make an ensemble)."""
        return self.kind != "baseline"


def _network(cls: type[NeuralForecaster]) -> Maker:
    def make(training: TrainingConfig, gbm: GBMConfig, seed: int) -> Forecaster:
        seeded = replace(training, seed=seed)
        if seeded.pooled:
            return PooledNeuralForecaster(cls, seeded)  # type: ignore[return-value]
        return cls(training_config=seeded)

    return make


def _lightgbm(training: TrainingConfig, gbm: GBMConfig, seed: int) -> Forecaster:
    return GlobalQuantileGBM(training.model.horizons, training.model.quantiles, gbm, seed)


def _baseline(cls: type) -> Maker:
    def make(training: TrainingConfig, gbm: GBMConfig, seed: int) -> Forecaster:
        return cls(horizons=training.model.horizons, quantiles=training.model.quantiles)

    return make


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family("mamba", "neural", _network(MambaForecaster), NeuralForecaster.from_bytes, True),
        Family("lstm", "neural", _network(LSTMForecaster), NeuralForecaster.from_bytes),
        Family("mingru", "neural", _network(MinGRUForecaster), NeuralForecaster.from_bytes),
        Family("lgbm", "global", _lightgbm, GBMSeriesForecaster.from_bytes, True),
        Family("rw", "baseline", _baseline(RandomWalk)),
        Family("empirical", "baseline", _baseline(EmpiricalQuantiles)),
        Family("drift", "baseline", _baseline(Drift)),
        Family("garch", "baseline", _baseline(Garch)),
        Family("drift-garch", "baseline", _baseline(DriftGarch)),
        Family("drift-garch-fhs", "baseline", _baseline(DriftGarchFHS)),
    )
}


def family(name: str) -> Family:
    """The family called ``name``; ValueError naming the known ones otherwise."""
    if name not in FAMILIES:
        raise ValueError(f"unknown model family {name!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[name]
