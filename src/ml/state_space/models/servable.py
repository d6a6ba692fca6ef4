"""What every served model family shares: variants, what a horizon serves, the forecast frame.

A served forecaster (the networks, :class:`~ml.state_space.models.neural.NeuralForecaster`,
and the gated LightGBM, :class:`~ml.state_space.models.gbm.GBMSeriesForecaster`) computes
three :data:`Variant` forecasts from one pass: what it was trained and backtested to serve
(its model blended with its fallback by the validation weights), the model alone, and the
fallback alone. :meth:`Servable.gated` is that gate, the one both families serve through;
:class:`Servable` turns the variants into the one-row-per-horizon frame that the service
returns, so the families cannot drift apart in dates, prices or labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd

from ml.state_space.data.calendar import add_trading_days
from ml.state_space.models.postprocess import QuantileCorrection, monotone_bands

if TYPE_CHECKING:
    from ml.state_space.models.card import ModelCard
    from ml.state_space.models.fallback import Fallback

Variant = Literal["trained", "model", "baseline"]
"""What a forecast serves: ``trained`` the model after its validation blend (what the
backtest judges), ``model`` the model alone, ``baseline`` the fallback
(``models.fallback``)."""


class InsufficientHistoryError(ValueError):
    """Too little (or unsuitable) price history to compute a forecast."""


class NotFittedError(RuntimeError):
    """``predict`` or ``save`` was called before ``fit`` or ``load``."""


class Servable:
    """The serving side of a fitted forecaster; subclasses provide the variants."""

    horizons: tuple[int, ...]
    quantiles: tuple[float, ...]
    card: ModelCard | None
    fallback: Fallback | None
    correction: QuantileCorrection | None  # the gate: the validation blend's weights

    def predict_variants(
        self, prices: pd.DataFrame, origins: pd.DatetimeIndex
    ) -> dict[Variant, np.ndarray]:
        """Every variant's (n_origins, H, Q) log-return quantiles, from one pass."""
        raise NotImplementedError

    def gated(
        self,
        model: np.ndarray,
        scale: np.ndarray,
        prices: pd.DataFrame,
        origins: pd.DatetimeIndex,
        model_z: np.ndarray | None = None,
    ) -> dict[Variant, np.ndarray]:
        """Every variant of the model's (n, H, Q) log-return quantiles ``model`` at
        ``origins`` of ``prices``: blended with the fallback by :attr:`correction` in units
        of ``scale`` (n, H), the random walk's h-day std (``model_z``: the model in those
        units, if it has them exactly), the model alone, the fallback alone; bands made
        monotone in the horizon. Without a correction the model is served alone."""
        baseline = self.fallback.predict_quantiles(prices, origins)
        trained = model
        if self.correction is not None:
            scale = scale[:, :, None]
            z = model / scale if model_z is None else model_z
            trained = self.correction.apply(z, baseline / scale) * scale
        return {
            "trained": monotone_bands(trained, self.quantiles, self.horizons),
            "model": monotone_bands(model, self.quantiles, self.horizons),
            "baseline": baseline,
        }

    def model_weights(self) -> dict[int, float]:
        """The model's share per horizon after the validation blend ({} without one)."""
        if self.correction is None:
            return {}
        return dict(zip(self.horizons, self.correction.blend_weight, strict=True))

    @property
    def history_rows(self) -> int:
        """Rows of price history the forecast at one origin depends on."""
        raise NotImplementedError

    def warm_up(self) -> None:
        """Prepare for the first forecast (compile what would otherwise compile then)."""

    def serves(self, horizon: int, variant: Variant = "trained") -> str:
        """What a ``variant`` forecast at ``horizon`` is: ``model``, ``blend`` (of the
        model and the fallback) or ``baseline`` (the fallback, :attr:`baseline_name`)."""
        if variant != "trained":
            return variant
        weight = self.model_weights().get(horizon, 1.0)
        return "model" if weight >= 1.0 else "baseline" if weight <= 0.0 else "blend"

    @property
    def baseline_name(self) -> str:
        """The fallback's name (``models.fallback``): what ``baseline`` serves."""
        if self.fallback is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() or load()")
        return self.fallback.name

    def predict(
        self, prices: pd.DataFrame, variants: Mapping[int, Variant] | None = None
    ) -> pd.DataFrame:
        """Forecast every horizon from the last row of ``prices``.

        One row per horizon (index ``horizon``): ``target_date`` (NYSE trading days ahead),
        ``serves`` (see :meth:`serves`), ``q<level>`` quantiles of the log return and
        ``price_q<level>`` of the price. ``variants`` picks a :data:`Variant` per horizon
        (default ``trained``). ``attrs`` holds ``symbol``, ``as_of``, ``last_close``,
        ``source`` and ``version``.
        """
        card = self._fitted_card()
        variants = variants or {}
        as_of = prices.index[-1]
        forecasts = self.predict_variants(prices, prices.index[-1:])  # features: the tail
        chosen = [variants.get(h, "trained") for h in self.horizons]
        log_returns = np.stack(
            [forecasts[variant][0, h] for h, variant in enumerate(chosen)]
        ).astype(np.float64)
        last_close = float(prices["close"].iloc[-1])
        labels = [f"q{q:g}" for q in self.quantiles]
        frame = pd.DataFrame(
            log_returns, columns=labels, index=pd.Index(self.horizons, name="horizon")
        )
        for label in labels:  # exp in float64: prices exact to the cent
            frame[f"price_{label}"] = last_close * np.exp(frame[label])
        serves = [self.serves(h, v) for h, v in zip(self.horizons, chosen, strict=True)]
        frame.insert(0, "serves", serves)
        frame.insert(0, "target_date", [add_trading_days(as_of, h) for h in self.horizons])
        frame.attrs = {
            "symbol": card.symbol,
            "as_of": as_of,
            "last_close": last_close,
            "source": prices.attrs.get("source"),
            "version": card.version,
        }
        return frame

    def _fitted_card(self) -> ModelCard:
        if self.card is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() or load()")
        return self.card
