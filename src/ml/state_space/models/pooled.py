"""One network trained on many series: the shared-backbone candidate of the forecast work.

A per-symbol network learns from one series' ~700 windows an epoch; the global LightGBM
peer, which beats it, learns from every series at once. :class:`PooledNeuralForecaster`
trains one network of a neural family on the training windows of every series of a run:

- each series keeps its own input pipeline: close-only features (every series has the
  same columns; with ``config.pooled_ohlcv`` the OHLC and volume ones too), a normaliser
  fitted on its own training rows (or, with ``pooled_normalizer="global"``, one fitted on
  every series' training rows), and targets divided by its own trailing volatility
  (``target_scaling="volatility"``), so the series share one footing; one target scale
  is fitted on all their training targets;
- one fit, early-stopped and learning-rate-scheduled on the validation blocks of all the
  series (each scored at its supervised steps, as a per-symbol fit is);
- then each series gets its own :class:`NeuralForecaster` around the shared network:
  the blend with its own fallback fitted on its own validation windows (the gate), and
  the fallback refitted on all its prices. With ``config.refit`` the network is retrained
  on every window of every series for the best epoch count, as a per-symbol fit is.

The series' forecasters are ordinary neural forecasters: saved, loaded and served as a
per-symbol model is. The backtest fits one per test year (``TrainingConfig.pooled``).

With the global normaliser no series statistic reaches the network, so it forecasts a
series it was never fitted on: :meth:`PooledNeuralForecaster.for_series` given that
series' history gates the network against the series' fallback on its own latest
windows, as a fitted series' gate is chosen (the global LightGBM does the same).
Such a network is stored once for all series (:meth:`PooledNeuralForecaster.shared_card`,
:meth:`~PooledNeuralForecaster.shared_bytes`) and rebuilt to forecast any series
(:meth:`PooledNeuralForecaster.from_shared`): the universe network of the service.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Self

import keras
import numpy as np
import pandas as pd

from ml.state_space.data.quality import DataQualityError
from ml.state_space.engine.compiled import copy_variables, set_random_seed
from ml.state_space.engine.loop import (
    EpochCallback,
    Segment,
    fit_network,
    refit_network,
    scratch_dir,
)
from ml.state_space.features.engineer import TimeSeriesFeatureEngineer
from ml.state_space.features.windows import Normalizer, target_std
from ml.state_space.models.card import DataWindow, ModelCard, new_version
from ml.state_space.models.config import TrainingConfig
from ml.state_space.models.neural import NeuralForecaster, SeriesWindows
from ml.state_space.registry import SHARED_NAME

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SharedNetwork:
    """What every series' forecaster of a pooled fit shares: the served network, its
    input normaliser (None where each series has its own), the target scale, and the
    early-stopped fit's epoch log and stop reason."""

    network: keras.Model
    normalizer: Normalizer | None
    target_scale: np.ndarray
    history: list[dict[str, Any]]
    stop_reason: str


class PooledNeuralForecaster:
    """A network of ``family`` fitted on many series; a forecaster per series."""

    def __init__(self, family: type[NeuralForecaster], config: TrainingConfig) -> None:
        self.family, self.config = family, config
        self.name = family.family
        self.members: dict[str, NeuralForecaster] = {}
        self.skipped: dict[str, str] = {}  # series left out of the fit, and why
        self.shared: SharedNetwork | None = None
        ohlcv = config.pooled_ohlcv
        self.engineer = TimeSeriesFeatureEngineer(use_ohlc=ohlcv, use_volume=ohlcv)

    def __repr__(self) -> str:
        return f"PooledNeuralForecaster({self.name}, {len(self.members)} series)"

    def fit_many(
        self,
        histories: Mapping[str, pd.DataFrame],
        *,
        work_dir: str | Path | None = None,
        on_epoch: EpochCallback | None = None,
        refit: bool | None = None,
    ) -> Self:
        """Fit one network on every usable series of ``histories`` (a series whose prices
        fail the data checks is left out and listed in :attr:`skipped`), then, if
        ``refit`` (default ``config.refit``), :meth:`refit` it on all of them. ``work_dir``
        keeps the fit's checkpoints and resume state. ValueError if no series is usable."""
        config = self.config
        set_random_seed(config.seed)
        members, series = self._prepare(histories)
        first = next(iter(members.values()))
        n_features = next(iter(series.values())).features.shape[1]
        network = first.build_network(n_features)
        trainer = first.trainer_for(network, n_features)
        train = [s.train_segment() for s in series.values()]
        validation = _validation_block(series.values(), config.output_steps)
        name = f"{self.name}-pooled"
        with scratch_dir(work_dir, prefix=f"fit-{name}-") as scratch:
            history, stop = fit_network(trainer, train, validation, config, scratch, name, on_epoch)
        copy_variables(trainer, network)
        for symbol, member in members.items():
            member.adopt(network, series[symbol], history, stop)
        self.members = members
        self.shared = _shared(network, series, history, stop, config)
        logger.info(
            "%s: one network for %d series, %d epochs (%s); it has a share in %d of them",
            name,
            len(members),
            len(history),
            stop,
            sum(member.network_served for member in members.values()),
        )
        if config.refit if refit is None else refit:
            self.refit(histories)
        else:
            for symbol, member in members.items():
                member.fit_fallback(series[symbol].prices)
        return self

    def for_series(self, symbol: str, prices: pd.DataFrame | None = None) -> NeuralForecaster:
        """The forecaster of one series: a fitted one's, or, given its history ``prices``,
        an unseen one's (the shared network gated on the series' own latest windows), where
        no series statistic reaches the network (``pooled_normalizer="global"``).
        ValueError otherwise."""
        if symbol in self.members:
            return self.members[symbol]
        reason = self.skipped.get(symbol, "it was not among the fitted series")
        shared = self.shared
        if shared is None or shared.normalizer is None or prices is None:
            raise ValueError(
                f"no pooled {self.name} forecaster for {symbol!r}: {reason}; a pooled network "
                "forecasts a series it was not fitted on given its history, with "
                "pooled_normalizer='global'"
            )
        return self._unseen(symbol, prices, shared)

    def shared_card(self) -> ModelCard:
        """The card of the shared network alone: what every series' forecaster shares
        (features, the global normaliser, the target scale, the fit's settings), no gate
        or fallback (each series fits its own), and the fitted series' data as one window.
        ValueError unless the network can forecast an unseen series (:meth:`for_series`)."""
        if self.shared is None or self.shared.normalizer is None:
            raise ValueError(
                f"{self!r} shares no network that forecasts any series: fit it with "
                "pooled_normalizer='global'"
            )
        cards = [member.card for member in self.members.values()]
        first = cards[0]
        data = DataWindow(
            source=first.data.source,
            dataset=first.data.dataset,
            first_date=min(card.data.first_date for card in cards),
            last_date=max(card.data.last_date for card in cards),
            rows=sum(card.data.rows for card in cards),
        )
        version, trained_at = new_version()
        return replace(
            first,
            symbol=SHARED_NAME,
            version=version,
            trained_at=trained_at,
            data=data,
            split={},
            data_quality={},
            correction=None,
            fallback=None,
        )

    def shared_bytes(self) -> bytes:
        """The shared network as ``.keras`` bytes (every fitted series' forecaster holds
        the same ones)."""
        if not self.members:
            raise ValueError(f"{self!r} is not fitted: call fit_many()")
        return next(iter(self.members.values())).to_bytes()

    @classmethod
    def from_shared(cls, model_bytes: bytes, card: ModelCard) -> Self:
        """A pooled network rebuilt from :meth:`shared_bytes` and :meth:`shared_card`: it
        forecasts any series given its history (:meth:`for_series`); it has no members."""
        network = NeuralForecaster.from_bytes(model_bytes, card)
        if network.config.pooled_normalizer != "global" or card.symbol != SHARED_NAME:
            raise ValueError(f"the card of {card.symbol} {card.version} is no shared network's")
        pooled = cls(type(network), network.config)
        pooled.shared = SharedNetwork(
            network.network, network.normalizer, network.target_scale, [], "loaded"
        )
        return pooled

    def _unseen(self, symbol: str, prices: pd.DataFrame, shared: SharedNetwork) -> NeuralForecaster:
        """The shared network's forecaster of a series it was not fitted on: the series'
        windows through the shared normaliser and target scale, its gate fitted on its own
        validation block, its fallback on all of ``prices``."""
        member = self.family(training_config=self.config)
        series = member.prepare(prices, symbol, self.engineer, shared.normalizer)
        series = replace(series, split=replace(series.split, target_scale=shared.target_scale))
        member.adopt(shared.network, series, shared.history, shared.stop_reason)
        member.fit_fallback(series.prices)
        logger.debug("%s %s (unseen): network share %s", self.name, symbol, member.model_weights())
        return member

    def _prepare(
        self, histories: Mapping[str, pd.DataFrame]
    ) -> tuple[dict[str, NeuralForecaster], dict[str, SeriesWindows]]:
        """A forecaster and the windows of every usable series, on one target scale."""
        engineer = self.engineer
        members, series = {}, {}
        for symbol, prices in histories.items():
            member = self.family(training_config=self.config)
            try:
                series[symbol] = member.prepare(prices, symbol, engineer)
            except (DataQualityError, ValueError) as error:
                logger.warning("%s left out of the pooled fit: %s", symbol, error)
                self.skipped[symbol] = str(error)
                continue
            members[symbol] = member
        if not members:
            raise ValueError(f"no usable series among {sorted(histories)}: {self.skipped}")
        if self.config.pooled_normalizer == "global":
            shared = _shared_normalizer(series.values())
            series = {s: member.renormalised(series[s], shared) for s, member in members.items()}
        return members, _on_one_scale(series)

    def refit(self, histories: Mapping[str, pd.DataFrame]) -> Self:
        """Retrain the network from its seeded initial state on every window of each
        fitted series' prices in ``histories`` (the fit's, or longer ones), for the
        early-stopped fit's best epochs at its learning rates, keeping each series' gate;
        every series' fallback is refitted on all its prices. Where the gates give the
        network no share in any series, only the fallbacks are refitted (as
        :meth:`NeuralForecaster.refit` does)."""
        members = self.members
        if not any(member.network_served for member in members.values()):
            for symbol, member in members.items():
                member.refit(histories[symbol])
            return self
        first = next(iter(members.values()))
        epochs, rates = first.refit_schedule()
        series = self._refit_windows(histories)
        if self.config.pooled_normalizer == "global":
            shared = _shared_normalizer(series.values())
            series = {
                s: members[s].renormalised(windows, shared, refit=True)
                for s, windows in series.items()
            }
        series = _on_one_scale(series)
        set_random_seed(self.config.seed)
        n_features = next(iter(series.values())).features.shape[1]
        network = first.build_network(n_features)
        trainer = first.trainer_for(network, n_features)
        train = [s.train_segment() for s in series.values()]
        refit_network(trainer, train, self.config, rates, f"{self.name}-pooled")
        copy_variables(trainer, network)
        for symbol, member in members.items():
            member.adopt_refit(network, series[symbol], epochs)
        fitted = self.shared
        self.shared = _shared(network, series, fitted.history, fitted.stop_reason, self.config)
        return self

    def _refit_windows(self, histories: Mapping[str, pd.DataFrame]) -> dict[str, SeriesWindows]:
        return {
            symbol: member.refit_windows(histories[symbol])
            for symbol, member in self.members.items()
        }


def _shared(
    network: keras.Model,
    series: Mapping[str, SeriesWindows],
    history: list[dict[str, Any]],
    stop_reason: str,
    config: TrainingConfig,
) -> SharedNetwork:
    """What the series of a pooled fit on ``series`` (on one target scale) share."""
    first = next(iter(series.values())).split
    normalizer = first.normalizer if config.pooled_normalizer == "global" else None
    return SharedNetwork(network, normalizer, first.target_scale, history, stop_reason)


def _shared_normalizer(series: Iterable[SeriesWindows]) -> Normalizer:
    """One normaliser fitted on the training input rows of every series (the rows whose
    windows train; the rows after them only hold training targets)."""
    rows = []
    for s in series:
        first_target_only = s.split.bounds[0] - s.split.generator.max_horizon
        rows.append(s.features.iloc[:first_target_only])
    return Normalizer().fit(pd.concat(rows))


def _on_one_scale(series: Mapping[str, SeriesWindows]) -> dict[str, SeriesWindows]:
    """``series`` with one target scale: the std of all their training targets."""
    scale = target_std(np.concatenate([s.split.train.y for s in series.values()]))
    return {
        symbol: replace(s, split=replace(s.split, target_scale=scale))
        for symbol, s in series.items()
    }


def _validation_block(series: Iterable[SeriesWindows], steps: int) -> Segment:
    """Every series' validation windows and targets as one segment, scored at ``steps``
    supervised steps. A series with fewer validation windows than that, which
    :func:`~ml.state_space.engine.loop.at_steps` scores at its last step only, is left
    out where others have enough (one shape for all); if none has, all are scored at
    their last step."""
    segments = [s.validation_segment(steps) for s in series]
    kept = [(x, y) for x, y in segments if y.ndim == 3] or segments
    if len(kept) < len(segments):
        logger.debug(
            "%d series with fewer than %d validation windows left out of the block",
            len(segments) - len(kept),
            steps,
        )
    return np.concatenate([x for x, _ in kept]), np.concatenate([y for _, y in kept])
