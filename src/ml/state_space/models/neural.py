"""One fitted pipeline: features -> normaliser -> network -> inverse target scaling.

:class:`NeuralForecaster` is the only way a neural model is fitted or used: the
training CLI, the walk-forward backtest, the service and a notebook all call
``fit`` / ``predict_quantiles`` / ``predict`` here, so they cannot drift apart.
Subclasses only say how to build their network (``build_network``).

    forecaster = MambaForecaster(MambaConfig(), TrainingConfig()).fit(prices)
    forecaster.predict(prices)          # one row per horizon: target date, quantiles, prices
    forecaster.save("models/aapl")      # model.keras + card.json
    NeuralForecaster.load("models/aapl")
"""

from __future__ import annotations

import functools
import json
import logging
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Self

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from ml.state_space.atomic import atomic_write_bytes, atomic_write_json
from ml.state_space.data.quality import QualityReport, validate_price_data
from ml.state_space.engine.compiled import (
    INFERENCE,
    NETWORKS,
    copy_variables,
    set_random_seed,
    weights_of,
)
from ml.state_space.engine.loop import (
    EpochCallback,
    at_steps,
    best_epoch,
    fit_network,
    refit_network,
    scratch_dir,
)
from ml.state_space.features.engineer import TimeSeriesFeatureEngineer
from ml.state_space.features.windows import (
    Normalizer,
    SequenceSplit,
    WindowSet,
    split_sequences,
    target_std,
)
from ml.state_space.models.base import (
    forward_log_returns,
    horizon_volatility,
    origin_positions,
)
from ml.state_space.models.card import (
    DataWindow,
    FeatureSpec,
    ModelCard,
    WindowSpan,
    library_versions,
    new_version,
)
from ml.state_space.models.config import TrainingConfig
from ml.state_space.models.fallback import (
    FALLBACKS,
    Fallback,
    fallback_from_dict,
    fallback_to_dict,
)
from ml.state_space.models.mamba.model import MambaConfig
from ml.state_space.models.postprocess import (
    QuantileCorrection,
    fit_correction,
)
from ml.state_space.models.servable import (
    InsufficientHistoryError,
    NotFittedError,
    Servable,
    Variant,
)

logger = logging.getLogger(__name__)

INFER_BATCH = 256  # many-origin predictions run in padded batches of this fixed size
MODEL_FILE, CARD_FILE = "model.keras", "card.json"
FAMILIES: dict[str, type[NeuralForecaster]] = {}


@dataclass(frozen=True)
class SeriesWindows:
    """One series' prices, their data quality, features and embargoed windows."""

    symbol: str
    prices: pd.DataFrame
    quality: QualityReport
    engineer: TimeSeriesFeatureEngineer
    features: pd.DataFrame
    split: SequenceSplit | None  # None only while it is being made

    def train_segment(self) -> tuple[np.ndarray, np.ndarray]:
        """The training windows and their targets in units of the target scale."""
        return self.split.train.x, self.split.train.y / self.split.target_scale

    def validation_segment(self, steps: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The validation windows and their targets in units of the target scale, at
        ``steps`` supervised steps (:func:`~ml.state_space.engine.loop.at_steps`)."""
        return at_steps(self.split.val.x, self.split.val.y / self.split.target_scale, steps)


class NeuralForecaster(Servable):
    """A per-symbol neural quantile forecaster with its whole input pipeline."""

    family: ClassVar[str]
    xla: ClassVar[bool] = True  # whether XLA may compile the network (if the config asks)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        FAMILIES[cls.family] = cls

    def __init__(
        self,
        model_config: MambaConfig | None = None,
        training_config: TrainingConfig | None = None,
    ) -> None:
        config = training_config or TrainingConfig()
        self.config = config if model_config is None else replace(config, model=model_config)
        self.name = self.family
        self.horizons: tuple[int, ...] = self.config.model.horizons
        self.quantiles: tuple[float, ...] = self.config.model.quantiles
        self.network: keras.Model | None = None
        self.card: ModelCard | None = None
        self.history: list[dict[str, Any]] = []
        self.stop_reason: str | None = None
        self.engineer: TimeSeriesFeatureEngineer | None = None
        self.normalizer: Normalizer | None = None
        self.target_scale: np.ndarray | None = None
        self.correction: QuantileCorrection | None = None
        self.fallback: Fallback | None = None
        self._initial_weights: list[np.ndarray] | None = None  # a warm start's, if any
        self._infer: Any = None  # the architecture's shared inference function
        self._weights: tuple[list, list] = ([], [])  # this network's arguments to it

    def __repr__(self) -> str:
        fitted = f"fitted on {self.card.symbol}" if self.card else "not fitted"
        return f"{type(self).__name__}({fitted})"

    def build_network(self, n_features: int, output_steps: int = 1) -> keras.Model:
        """A compiled network (batch, seq_len, n_features) -> (batch, H, Q) scaled quantiles;
        ``output_steps`` K > 1: the training network with the same weights, supervised at
        the last K steps of each window, (batch, K, H, Q)."""
        raise NotImplementedError

    def trainer_for(self, network: keras.Model, n_features: int) -> keras.Model:
        """The process's compiled training network of this shape, holding ``network``'s
        initial weights (see ``engine.compiled``)."""
        config = self.config
        shape = [
            self.family,
            config.model.to_dict(),
            n_features,
            config.batch_size,
            config.output_steps,
        ]
        build = functools.partial(self.build_network, n_features, config.output_steps)
        return NETWORKS.trainer_for(json.dumps(shape, sort_keys=True), network, build)

    @property
    def history_rows(self) -> int:
        """Rows of price history the forecast at one origin depends on."""
        return TimeSeriesFeatureEngineer.warmup + self.config.model.seq_len

    # --- fitting -------------------------------------------------------------------------

    def fit(
        self,
        prices: pd.DataFrame,
        *,
        symbol: str | None = None,
        work_dir: str | Path | None = None,
        on_epoch: EpochCallback | None = None,
        refit: bool | None = None,
        warm_start: NeuralForecaster | None = None,
    ) -> Self:
        """Fit on every row of ``prices`` (the last ``config.days`` of them, if set).

        The most recent ``val_fraction`` block, behind an embargo of the longest horizon,
        is the validation block for early stopping, learning-rate decay and the blend;
        then, if ``refit`` (default ``config.refit``), :meth:`refit` on all of ``prices``.
        ``work_dir`` keeps checkpoints and resume state (a temporary directory when
        omitted). ``warm_start``, a fitted forecaster of the same architecture (an
        earlier fold's, or a pooled network's), gives the features and the initial weights
        of the fit and the refit instead of the seeded ones. Raises ``DataQualityError``
        for unusable prices.
        """
        started = time.perf_counter()
        config = self.config
        set_random_seed(config.seed)
        symbol = symbol or prices.attrs.get("symbol") or "UNKNOWN"
        series = self.prepare(prices, symbol, warm_start.engineer if warm_start else None)
        n_features = series.features.shape[1]
        network = self.build_network(n_features)  # seeded initial state
        self._initial_weights = self._warm_weights(warm_start, series.features.columns)
        if self._initial_weights is not None:
            network.set_weights(self._initial_weights)
        trainer = self.trainer_for(network, n_features)
        train = [series.train_segment()]
        validation = series.validation_segment(config.output_steps)
        with scratch_dir(work_dir, prefix=f"fit-{series.symbol}-") as scratch:
            history, stop = fit_network(
                trainer, train, validation, config, scratch, series.symbol, on_epoch
            )
        copy_variables(trainer, network)  # this forecaster owns its weights
        self.adopt(network, series, history, stop)
        if config.refit if refit is None else refit:
            self.refit(series.prices)
        else:
            self.fit_fallback(series.prices)
        self.card = replace(self.card, training_seconds=time.perf_counter() - started)
        logger.info(
            "%s %s fitted in %.1f s (%s)",
            self.family,
            series.symbol,
            self.card.training_seconds,
            stop,
        )
        return self

    def prepare(
        self,
        prices: pd.DataFrame,
        symbol: str,
        engineer: TimeSeriesFeatureEngineer | None = None,
        normalizer: Normalizer | None = None,
    ) -> SeriesWindows:
        """Validated prices (the last ``config.days`` rows, if set), their features
        (``engineer``, or one resolved from the price columns) and their embargoed
        train/validation windows (normalised by ``normalizer``, or one fitted on their
        training rows), targets scaled as ``config.target_scaling`` says. Raises
        ``DataQualityError`` for unusable prices."""
        prices, quality = self._validated(prices, symbol)
        engineer = engineer or TimeSeriesFeatureEngineer().resolve(prices)
        features = engineer.transform(prices)
        windows = SeriesWindows(symbol, prices, quality, engineer, features, split=None)
        return self._split(windows, self.config.val_fraction, normalizer)

    def renormalised(
        self, series: SeriesWindows, normalizer: Normalizer, refit: bool = False
    ) -> SeriesWindows:
        """``series`` (of :meth:`prepare`, or of :meth:`refit_windows` with ``refit``) split
        as before, normalised by ``normalizer``; its features are not computed again."""
        return self._split(series, 0.0 if refit else self.config.val_fraction, normalizer)

    def _split(
        self, series: SeriesWindows, val_fraction: float, normalizer: Normalizer | None
    ) -> SeriesWindows:
        """``series`` with its embargoed windows (normalised by ``normalizer``, or one
        fitted on their training rows), targets scaled as ``config.target_scaling`` says."""
        prices, config = series.prices, self.config
        split = split_sequences(
            series.features, prices["close"], config.generator(), val_fraction, 0.0, normalizer
        )
        if config.target_scaling == "volatility":
            split = _volatility_scaled(split, prices, self.horizons)
        return replace(series, split=split)

    def adopt(
        self,
        network: keras.Model,
        series: SeriesWindows,
        history: list[dict[str, Any]],
        stop_reason: str,
    ) -> None:
        """Make ``network``, early-stopped on ``series``' validation block (alone or with
        other series'), this forecaster's: its card, and the blend and calibration fitted
        on the series' validation windows."""
        self.history, self.stop_reason = history, stop_reason
        card = _card(self.family, series, self.config)
        self._restore(network, card)
        if self.config.blend:
            self.correction = self._fit_correction(series.split, series.prices)
            card = replace(card, correction=self.correction.to_dict())
        self.card = card

    def refit(self, prices: pd.DataFrame) -> Self:
        """Retrain from the seeded initial state on every window of ``prices`` (the last
        ``config.days`` rows, if set) for the best number of epochs of this forecaster's
        early-stopped :meth:`fit`, at its learning rates.

        ``fit`` calls it on its own history when ``config.refit`` is set, so the
        validation block is learnt too; the trainer calls it on a longer history, so the
        served model has seen every price. The features keep their definition and the
        corrections fitted on validation are kept; the card records the refit.

        Where the validation gate serves the fallback at every horizon
        (:attr:`network_served` is False), retraining the network would change no served
        forecast: only the fallback is refitted on all of ``prices`` (``refit_epochs``
        stays None; the card's data window and data quality describe ``prices``).
        """
        card = self._fitted_card()
        if not self.network_served:
            logger.info(
                "%s: the network serves no horizon; refitting its fallback only", card.symbol
            )
            prices, quality = self._validated(prices, card.symbol)
            served = replace(card, data=data_window(prices), data_quality=quality.to_dict())
            self.card = self._with_fallback(served, prices)
            return self
        series = self.refit_windows(prices)
        epochs, rates = self.refit_schedule()
        set_random_seed(self.config.seed)
        network = self.build_network(series.features.shape[1])
        if self._initial_weights is not None:
            network.set_weights(self._initial_weights)
        trainer = self.trainer_for(network, series.features.shape[1])
        refit_network(trainer, [series.train_segment()], self.config, rates, card.symbol)
        copy_variables(trainer, network)
        self.adopt_refit(network, series, epochs)
        return self

    def refit_schedule(self) -> tuple[int, list[float]]:
        """The refit's epochs (the early-stopped fit's best) and their learning rates."""
        if not self.history:
            raise NotFittedError("refit() needs the epoch log of a fit() of this forecaster")
        epochs = best_epoch(self.history) or len(self.history)
        return epochs, [record["learning_rate"] for record in self.history[:epochs]]

    def refit_windows(
        self, prices: pd.DataFrame, normalizer: Normalizer | None = None
    ) -> SeriesWindows:
        """Every window of ``prices`` (the last ``config.days`` rows, if set) as training
        windows, through this forecaster's features, normalised by ``normalizer`` or by
        one fitted afresh on them."""
        card = self._fitted_card()
        prices, quality = self._validated(prices, card.symbol)
        features = self.engineer.transform(prices)[card.features.names]
        windows = SeriesWindows(card.symbol, prices, quality, self.engineer, features, None)
        return self._split(windows, 0.0, normalizer)

    def _validated(self, prices: pd.DataFrame, symbol: str) -> tuple[pd.DataFrame, QualityReport]:
        """The last ``config.days`` rows of ``prices`` (all, if unset) and their data
        quality; ``DataQualityError`` if they cannot be fitted on."""
        config = self.config
        if config.days is not None:
            prices = prices.iloc[-config.days :]
        return prices, validate_price_data(prices, symbol, min_rows=config.min_history(0.0))

    def adopt_refit(self, network: keras.Model, series: SeriesWindows, epochs: int) -> None:
        """Serve ``network``, refitted on ``series`` (:meth:`refit_windows`) for ``epochs``,
        keeping the corrections fitted on validation; the card records the refit."""
        split = series.split
        card = replace(
            self._fitted_card(),
            normalizer=split.normalizer.to_dict(),
            target_scale=[float(s) for s in split.target_scale],
            data=data_window(series.prices),
            split={**self.card.split, "refit": span(split.train.anchor_dates)},
            data_quality=series.quality.to_dict(),
            refit_epochs=epochs,
        )
        self._restore(network, self._with_fallback(card, series.prices))

    # --- forecasting ---------------------------------------------------------------------

    def predict_quantiles(
        self, prices: pd.DataFrame, origins: pd.DatetimeIndex, variant: Variant = "trained"
    ) -> np.ndarray:
        """(n_origins, H, Q) log-return quantiles; origin ``t`` uses rows ``<= t`` only."""
        return self.predict_variants(prices, origins)[variant]

    def predict_variants(
        self, prices: pd.DataFrame, origins: pd.DatetimeIndex
    ) -> dict[Variant, np.ndarray]:
        """Every :data:`Variant` of the (n_origins, H, Q) quantiles, from one network pass."""
        card = self._fitted_card()
        origins = pd.DatetimeIndex(origins)
        positions = origin_positions(prices.index, origins)
        self._check_history(prices, int(positions.min()), card.symbol)
        start = int(positions.min()) - self.history_rows + 1
        frame = prices.iloc[start : int(positions.max()) + 1]
        try:
            features = self.engineer.transform(frame)[card.features.names]
            normalised = self.normalizer.transform(features.to_numpy())  # (T', F)
        except ValueError as error:  # non-positive prices, non-finite features, ...
            raise InsufficientHistoryError(
                f"{card.symbol}: unusable price history: {error}"
            ) from error
        last_rows = positions - start - self.engineer.warmup  # window ends in feature rows
        steps = np.arange(-self.config.model.seq_len + 1, 1)
        windows = normalised[last_rows[:, None] + steps]  # (n, L, F)
        network = self._network_returns(windows, prices, positions)
        scale = horizon_volatility(prices, positions, self.horizons)
        return self.gated(network, scale, prices, origins)

    @property
    def network_served(self) -> bool:
        """Whether the network has a share in the served forecast of any horizon."""
        return self.correction is None or max(self.correction.blend_weight) > 0

    def _network_returns(
        self, windows: np.ndarray, prices: pd.DataFrame, positions: np.ndarray
    ) -> np.ndarray:
        """The network's log-return quantiles (n, H, Q) for normalised windows ending at
        ``positions`` of ``prices``, before any correction."""
        quantiles = self.infer_scaled(windows) * self.target_scale[None, :, None]
        if self.config.target_scaling == "volatility":
            quantiles *= horizon_volatility(prices, positions, self.horizons)[:, :, None]
        return quantiles

    def _fit_correction(self, split: SequenceSplit, prices: pd.DataFrame) -> QuantileCorrection:
        """Blend/calibration fitted on the validation windows, in z units, against a
        fallback that has seen none of their targets (:meth:`_validation_fallback`)."""
        origins, fallback = self._validation_fallback(split, prices)
        positions = prices.index.get_indexer(origins)
        if len(positions) == 0:
            logger.info("%s: no validation origin to judge the network on", self.card.symbol)
            return QuantileCorrection.fallback_only(len(self.horizons), len(self.quantiles))
        rows = split.val.anchor_dates.get_indexer(origins)
        scale = horizon_volatility(prices, positions, self.horizons)
        predicted = self._network_returns(split.val.x[rows], prices, positions) / scale[:, :, None]
        baseline = fallback.predict_quantiles(prices, origins)
        outcomes = np.stack(
            [forward_log_returns(prices, h)[positions] for h in self.horizons], axis=1
        )
        return fit_correction(
            predicted,
            outcomes / scale,
            baseline / scale[:, :, None],
            self.quantiles,
            self.horizons,
        )

    def _validation_fallback(
        self, split: SequenceSplit, prices: pd.DataFrame
    ) -> tuple[pd.DatetimeIndex, Fallback]:
        """The validation origins the network is judged on, and the fallback it is judged
        against there: one fitted on the rows the training windows span (their targets
        included)."""
        origins = split.val.anchor_dates
        train_end = prices.index.get_loc(split.train.anchor_dates[-1]) + max(self.horizons) + 1
        return origins, self._new_fallback().fit(prices.iloc[:train_end])

    def warm_up(self) -> None:
        """Compile single-window inference now (the first forecast would pay for it)."""
        card = self._fitted_card()
        self.infer_scaled(np.zeros((1, self.config.model.seq_len, len(card.features.names))))

    # --- persistence ---------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """The network as ``.keras`` bytes (the card travels separately)."""
        if self.network is None:
            raise NotFittedError("fit() or load() the forecaster before saving it")
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / MODEL_FILE
            self.network.save(path)
            return path.read_bytes()

    @staticmethod
    def from_bytes(model_bytes: bytes, card: ModelCard) -> NeuralForecaster:
        """Rebuild a fitted forecaster of ``card.family`` from its network bytes and card."""
        if card.family not in FAMILIES:
            raise ValueError(f"unknown model family {card.family!r}; known: {sorted(FAMILIES)}")
        forecaster = FAMILIES[card.family](training_config=TrainingConfig.from_dict(card.config))
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / MODEL_FILE
            path.write_bytes(model_bytes)
            network = keras.saving.load_model(path, compile=False)
        forecaster._restore(network, card)
        return forecaster

    def save(self, path: str | Path) -> Path:
        """Write ``model.keras`` and ``card.json`` into the directory ``path`` (atomically)."""
        card = self._fitted_card()
        path = Path(path)
        atomic_write_bytes(path / MODEL_FILE, self.to_bytes())
        atomic_write_json(path / CARD_FILE, card.to_dict())
        return path

    @staticmethod
    def load(path: str | Path) -> NeuralForecaster:
        """Load a directory written by :meth:`save`."""
        path = Path(path)
        card = ModelCard.from_dict(json.loads((path / CARD_FILE).read_text(encoding="utf-8")))
        return NeuralForecaster.from_bytes((path / MODEL_FILE).read_bytes(), card)

    # --- internals -----------------------------------------------------------------------

    def _restore(self, network: keras.Model, card: ModelCard) -> None:
        self.network, self.card = network, card
        self.engineer = TimeSeriesFeatureEngineer.from_dict(card.features.engineer)
        self.normalizer = Normalizer.from_dict(card.normalizer)
        self.target_scale = np.asarray(card.target_scale, dtype=np.float32)
        self.correction = QuantileCorrection.from_dict(card.correction) if card.correction else None
        self.fallback = fallback_from_dict(card.fallback, self.horizons, self.quantiles)
        key = json.dumps(
            [self.family, self.config.model.to_dict(), list(network.input_shape[1:])],
            sort_keys=True,
        )
        jit = self.xla and self.config.model.jit_compile
        self._infer = INFERENCE.function_for(key, network, jit)
        self._weights = weights_of(network)

    def _warm_weights(
        self, warm_start: NeuralForecaster | None, feature_names: Sequence[str]
    ) -> list[np.ndarray] | None:
        """The weights of ``warm_start`` to start a fit from; ValueError if its network
        or its inputs differ from this forecaster's (its learning rate may: a fine-tune
        runs at a lower one)."""
        if warm_start is None:
            return None
        card = warm_start._fitted_card()
        rate = self.config.model.learning_rate
        same_network = warm_start.family == self.family and (
            replace(warm_start.config.model, learning_rate=rate) == self.config.model
        )
        if not same_network or card.features.names != list(feature_names):
            raise ValueError(
                f"cannot warm-start a {self.family} fit from {warm_start!r}: its network or "
                "its features differ; warm-start only from a fit of the same configuration"
            )
        return warm_start.network.get_weights()

    def _new_fallback(self) -> Fallback:
        return FALLBACKS[self.config.fallback](self.horizons, self.quantiles)

    def fit_fallback(self, prices: pd.DataFrame) -> None:
        """Serve the fallback fitted on all of ``prices`` (the network is kept)."""
        self.card = self._with_fallback(self._fitted_card(), prices)

    def _with_fallback(self, card: ModelCard, prices: pd.DataFrame) -> ModelCard:
        """``card`` holding the served fallback, fitted on all of ``prices``."""
        self.fallback = self._new_fallback().fit(prices)
        return replace(card, fallback=fallback_to_dict(self.fallback))

    def infer_scaled(self, windows: np.ndarray) -> np.ndarray:
        """Network outputs for (n, L, F) windows; n > 1 runs in padded fixed-size batches so
        the compiled function sees two shapes only (1 and ``INFER_BATCH``)."""
        windows = windows.astype(np.float32, copy=False)
        if len(windows) == 1:
            return self._infer(*self._weights, tf.constant(windows)).numpy()
        out = []
        for begin in range(0, len(windows), INFER_BATCH):
            batch = windows[begin : begin + INFER_BATCH]
            padded = np.zeros((INFER_BATCH, *batch.shape[1:]), np.float32)
            padded[: len(batch)] = batch
            out.append(self._infer(*self._weights, tf.constant(padded)).numpy()[: len(batch)])
        return np.concatenate(out)

    def _check_history(self, prices: pd.DataFrame, first_position: int, symbol: str) -> None:
        needed = self._fitted_card().features.price_columns
        missing = [c for c in ("close", *needed) if c not in prices.columns]
        if missing:
            raise InsufficientHistoryError(
                f"The {symbol} model was trained with columns {['close', *needed]}; "
                f"the price history lacks {missing}."
            )
        if first_position + 1 < self.history_rows:
            raise InsufficientHistoryError(
                f"{symbol}: {first_position + 1} rows of history up to the first origin, the "
                f"model needs at least {self.history_rows} (feature warm-up + a "
                f"{self.config.model.seq_len}-day window)."
            )


def _volatility_scaled(
    split: SequenceSplit, prices: pd.DataFrame, horizons: tuple[int, ...]
) -> SequenceSplit:
    """Targets divided by the random walk's h-day std at their origin; the target scale
    is then refitted on the scaled training targets."""

    def scaled(windows: WindowSet) -> WindowSet:
        positions = prices.index.get_indexer(windows.anchor_dates)
        scale = horizon_volatility(prices, positions, horizons)
        return replace(windows, y=(windows.y / scale).astype(np.float32))

    train, val = scaled(split.train), scaled(split.val)
    return replace(split, train=train, val=val, target_scale=target_std(train.y))


def span(dates: pd.DatetimeIndex) -> WindowSpan:
    """First and last anchor of a set of windows."""
    return WindowSpan(len(dates), str(dates[0].date()), str(dates[-1].date()))


def data_window(prices: pd.DataFrame) -> DataWindow:
    """The source and date range of the prices a network was trained on."""
    return DataWindow(
        source=prices.attrs.get("source"),
        dataset=prices.attrs.get("dataset"),
        first_date=str(prices.index[0].date()),
        last_date=str(prices.index[-1].date()),
        rows=len(prices),
    )


def _card(family: str, series: SeriesWindows, config: TrainingConfig) -> ModelCard:
    version, trained_at = new_version()
    engineer, split = series.engineer, series.split
    return ModelCard(
        family=family,
        symbol=series.symbol,
        version=version,
        trained_at=trained_at,
        training_seconds=0.0,
        config=config.to_dict(),
        features=FeatureSpec(
            engineer=engineer.to_dict(),
            names=list(series.features.columns),
            price_columns=["open", "high", "low"] * bool(engineer.use_ohlc)
            + ["volume"] * bool(engineer.use_volume),
        ),
        normalizer=split.normalizer.to_dict(),
        target_scale=[float(s) for s in split.target_scale],
        data=data_window(series.prices),
        split={"train": span(split.train.anchor_dates), "val": span(split.val.anchor_dates)},
        data_quality=series.quality.to_dict(),
        versions=library_versions(keras=keras.__version__, tensorflow=tf.__version__),
    )
