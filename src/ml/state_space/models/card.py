"""The model card: a typed, versioned description of one fitted neural forecaster.

Everything needed to rebuild the pipeline around the saved network (feature config,
normaliser, target scale) plus what a user needs to judge it (data window, split,
data quality, library versions). It replaces the untyped metadata dicts: training
writes it, serving and the backtest read it, and ``from_dict`` refuses a card of
another schema version with a message that says to retrain.
"""

from __future__ import annotations

import platform
import uuid
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from ml.state_space._version import __version__

CARD_SCHEMA_VERSION = 1


def new_version() -> tuple[str, str]:
    """A new model version's name (time-ordered, unique) and its ISO ``trained_at``."""
    now = datetime.now(UTC)
    return f"{now:%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}", now.isoformat(timespec="seconds")


def library_versions(**frameworks: str) -> dict[str, str]:
    """The versions a card records: this package, ``frameworks``, NumPy, pandas, Python."""
    return {
        "package": __version__,
        **frameworks,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "python": platform.python_version(),
    }


class CardSchemaError(ValueError):
    """A stored model card that this version of the library cannot read."""


@dataclass(frozen=True)
class FeatureSpec:
    """How inputs are computed: the engineer's config, the column order, the price columns."""

    engineer: dict[str, Any]
    names: list[str]
    price_columns: list[str]


@dataclass(frozen=True)
class DataWindow:
    """The price history a model was fitted on (``dataset``: which bundled or user file)."""

    source: str | None
    first_date: str
    last_date: str
    rows: int
    dataset: str | None = None


@dataclass(frozen=True)
class WindowSpan:
    """Anchors of one segment's windows."""

    windows: int
    first: str
    last: str


@dataclass(frozen=True)
class ModelCard:
    """One fitted model version, JSON-serialisable through ``to_dict``/``from_dict``."""

    family: str
    symbol: str
    version: str
    trained_at: str
    training_seconds: float
    config: dict[str, Any]
    features: FeatureSpec
    normalizer: dict[str, Any]
    target_scale: list[float]
    data: DataWindow
    split: dict[str, WindowSpan]
    data_quality: dict[str, Any]
    versions: dict[str, str]
    weights_sha256: str | None = None
    correction: dict[str, Any] | None = None  # QuantileCorrection.to_dict(), if fitted
    refit_epochs: int | None = None  # epochs of the refit on all windows, if refitted
    fallback: dict[str, Any] | None = None  # models.fallback.fallback_to_dict(); None: rw
    schema_version: int = field(default=CARD_SCHEMA_VERSION)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelCard:
        """Parse a stored card; raises :class:`CardSchemaError` for another schema version
        or missing fields."""
        version = data.get("schema_version")
        if version != CARD_SCHEMA_VERSION:
            raise CardSchemaError(
                f"model card of {data.get('symbol', '?')} has schema version {version!r}; this "
                f"library reads version {CARD_SCHEMA_VERSION}. Retrain the model: python "
                f"scripts/train_mamba_models.py --symbols {data.get('symbol', 'SYMBOL')}"
            )
        required = {f.name for f in fields(cls) if f.default is MISSING}
        missing = sorted(required - set(data))
        if missing:
            raise CardSchemaError(f"model card lacks fields {missing}; retrain the model")
        return cls(
            **{
                **data,
                "features": FeatureSpec(**data["features"]),
                "data": DataWindow(**data["data"]),
                "split": {name: WindowSpan(**span) for name, span in data["split"].items()},
            }
        )
