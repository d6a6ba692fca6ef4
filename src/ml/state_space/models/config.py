"""What decides a training run besides the data: one dataclass, passed explicitly."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ml.state_space.features.engineer import TimeSeriesFeatureEngineer
from ml.state_space.features.windows import SequenceGenerator, min_feature_rows
from ml.state_space.models.fallback import FALLBACK_NAMES, fallback_min_rows
from ml.state_space.models.mamba.model import MambaConfig

TARGET_SCALINGS = ("global", "volatility")
POOLED_NORMALIZERS = ("series", "global")


@dataclass
class TrainingConfig:
    """Optimisation, data window and validation settings; ``model`` is the network's config."""

    model: MambaConfig = field(default_factory=MambaConfig)
    epochs: int = 30
    batch_size: int = 64
    days: int | None = None  # the most recent rows used; None: all (backtest-chosen)
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    early_stopping_patience: int = 6
    lr_patience: int = 2
    lr_factor: float = 0.5
    min_lr: float = 1e-5
    augment: bool = True
    seed: int = 42
    # "volatility": targets divided by the trailing 60-day volatility at the origin times
    # sqrt(h), so forecasts scale with the regime; "global": by the training std per horizon.
    # Chosen on the walk-forward backtest (docs/EVALUATION.md, "Forecast-quality experiments")
    target_scaling: str = "volatility"
    # corrections fitted on the validation block (ml.state_space.models.postprocess)
    blend: bool = True  # blend with the fallback where the network shows skill
    # what is served where the network shows no skill, and blended with where it does
    # (models.fallback): "drift-garch-fhs" (the training drift, a GARCH band shaped by
    # the history), "drift-garch" or "rw" (the random walk); chosen on the walk-forward
    # backtest: docs/EVALUATION.md, round 4
    fallback: str = "drift-garch-fhs"
    # after the early-stopped fit, retrain on all windows (the validation block too) for
    # the selected number of epochs, keeping the corrections fitted on validation (helped
    # on the walk-forward backtest: docs/EVALUATION.md)
    refit: bool = True
    # windows are supervised at their last K steps (at most seq_len) and an epoch uses
    # every K-th window, so each origin is a target once per epoch at a fraction of the
    # cost; as good on the walk-forward backtest and 3.5x faster than K = 1 (the last step
    # only): docs/EVALUATION.md, round 3
    supervised_steps: int = 10
    # one network trained on the windows of every series of a run, each series with its
    # own normaliser, gate and fallback (models.pooled); False: one network per series
    pooled: bool = False
    # a pooled network's input normaliser: "series", each series' own (fitted on its
    # training rows), or "global", one fitted on the training rows of every series, so
    # levels such as volatility compare across series
    pooled_normalizer: str = "series"
    # a pooled network's inputs: the close-only features (every series has them), or the
    # OHLC and volume ones too (a series without those columns is left out of the fit)
    pooled_ohlcv: bool = False
    # an epoch is a random draw of this many training windows (engine.loop.TrainingBatches:
    # gathered batch by batch, never copied), so a universe's fit validates, decays its
    # learning rate and stops early at a fixed cost per epoch; None: every window
    windows_per_epoch: int | None = None

    def __post_init__(self) -> None:
        if self.supervised_steps < 1:
            raise ValueError(f"supervised_steps={self.supervised_steps} must be >= 1")
        if self.model.window_norm_rows > self.model.seq_len - self.output_steps + 1:
            raise ValueError(
                f"model.window_norm_rows={self.model.window_norm_rows}: a window supervised at "
                f"its last {self.output_steps} steps may be standardised on its first "
                f"{self.model.seq_len - self.output_steps + 1} rows at most (the rows up to "
                "its first supervised step), or a target would leak into the inputs"
            )
        if self.windows_per_epoch is not None and self.windows_per_epoch < self.batch_size:
            raise ValueError(
                f"windows_per_epoch={self.windows_per_epoch} must be None or at least "
                f"batch_size={self.batch_size}"
            )
        if self.fallback not in FALLBACK_NAMES:
            raise ValueError(f"fallback={self.fallback!r}; expected one of {FALLBACK_NAMES}")
        if self.pooled_normalizer not in POOLED_NORMALIZERS:
            raise ValueError(
                f"pooled_normalizer={self.pooled_normalizer!r}; expected one of "
                f"{POOLED_NORMALIZERS}"
            )
        if self.target_scaling not in TARGET_SCALINGS:
            raise ValueError(
                f"target_scaling={self.target_scaling!r}; expected one of {TARGET_SCALINGS}"
            )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "model": self.model.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingConfig:
        """Inverse of ``to_dict``; unknown keys are rejected."""
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"Unknown TrainingConfig keys {unknown}; expected {sorted(names)}.")
        return cls(**{**data, "model": MambaConfig.from_dict(data.get("model", {}))})

    @property
    def output_steps(self) -> int:
        """The steps of each window the training network is supervised at."""
        return min(self.supervised_steps, self.model.seq_len)

    def generator(self) -> SequenceGenerator:
        return SequenceGenerator(seq_len=self.model.seq_len, horizons=self.model.horizons)

    def min_history(self, test_fraction: float | None = None) -> int:
        """Price rows a fit needs (``test_fraction=0``), or a fit plus its held-out test
        block (``holdout``: the last ``test_fraction`` of feature rows, an embargo of the
        longest horizon before it, and at least one test origin)."""
        generator = self.generator()
        feature_rows = min_feature_rows(generator, self.val_fraction, 0.0)
        # the training block holds output_steps windows, one per supervised step, and
        # (with the warm-up rows before it) the price rows the fallback fits on
        warmup = TimeSeriesFeatureEngineer.warmup
        train_rows = max(
            generator.span + self.output_steps - 1, fallback_min_rows(self.fallback) - warmup
        )
        while feature_rows - int(feature_rows * self.val_fraction) < train_rows:
            feature_rows += 1
        fit_rows = warmup + feature_rows
        test = self.test_fraction if test_fraction is None else test_fraction
        if test == 0:
            return fit_rows
        embargo = generator.max_horizon
        rows = fit_rows
        while True:
            n_test = holdout_rows(rows, test)
            if rows - n_test - embargo >= fit_rows and n_test > embargo:
                return rows
            rows += 1


def holdout_rows(price_rows: int, test_fraction: float) -> int:
    """Rows in the held-out test block: ``test_fraction`` of the feature rows."""
    return int((price_rows - TimeSeriesFeatureEngineer.warmup) * test_fraction)
