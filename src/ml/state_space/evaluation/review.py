"""Turn a models directory's metrics JSON into a ranked, flagged review.

Flags mark what a person should look at before trusting a model:

- ``worse_than_random_walk``: test MAE above the no-change forecast (skill < 0);
- ``stopped_at_epoch_1``: the best validation loss came at the first epoch, so
  training never improved on its initialisation;
- ``val_loss_rising``: validation loss rose over the first three epochs;
- ``diverged``: a non-finite loss was recorded;
- ``miscalibrated``: some quantile's coverage (share of outcomes below it) is far
  from its own level, or the outer band's coverage is far from its width.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ml.state_space.registry import ModelRegistry

COVERAGE_TOLERANCE = 0.15
QUANTILE_TOLERANCE = 0.10


@dataclass
class HorizonRow:
    """One symbol's test metrics at one horizon."""

    symbol: str
    horizon: int
    skill_vs_random_walk: float | None
    skill_vs_drift: float | None
    mae: float
    random_walk_mae: float
    directional_accuracy: float | None
    always_up_accuracy: float
    interval_coverage: float
    best_epoch: int | None
    epochs_run: int
    training_seconds: float
    flags: list[str] = field(default_factory=list)


def training_flags(metrics: dict[str, Any]) -> list[str]:
    """Flags that concern the whole training run (not one horizon)."""
    epochs = metrics.get("epochs", [])
    val = [e.get("val_loss") for e in epochs]
    flags = []
    if any(v is None or not math.isfinite(v) for v in val) or metrics.get("stop_reason") == "nan":
        flags.append("diverged")
    if metrics.get("best_epoch") == 1 and len(epochs) > 1:
        flags.append("stopped_at_epoch_1")
    if len(val) >= 3 and all(v is not None for v in val[:3]) and val[0] < val[1] < val[2]:
        flags.append("val_loss_rising")
    return flags


def is_miscalibrated(test: dict[str, Any]) -> bool:
    """Any quantile off its level by more than ``QUANTILE_TOLERANCE``, or the outer
    band's coverage off its nominal width by more than ``COVERAGE_TOLERANCE``."""
    levels = {float(level): share for level, share in test["coverage"].items()}
    if any(abs(share - level) > QUANTILE_TOLERANCE for level, share in levels.items()):
        return True
    nominal = max(levels) - min(levels)
    return abs(test["interval_coverage"] - nominal) > COVERAGE_TOLERANCE


def horizon_rows(metrics: dict[str, Any]) -> list[HorizonRow]:
    """One row per horizon of one symbol's metrics JSON."""
    run_flags = training_flags(metrics)
    rows = []
    for key, test in metrics["test"].items():
        flags = list(run_flags)
        skill = test["skill_vs_random_walk"]
        if skill is not None and skill < 0:
            flags.append("worse_than_random_walk")
        if is_miscalibrated(test):
            flags.append("miscalibrated")
        rows.append(
            HorizonRow(
                symbol=metrics["symbol"],
                horizon=int(key.removeprefix("h")),
                skill_vs_random_walk=skill,
                skill_vs_drift=test["skill_vs_drift"],
                mae=test["mae"],
                random_walk_mae=test["random_walk"]["mae"],
                directional_accuracy=test["directional_accuracy"],
                always_up_accuracy=test["always_up_directional_accuracy"],
                interval_coverage=test["interval_coverage"],
                best_epoch=metrics.get("best_epoch"),
                epochs_run=len(metrics.get("epochs", [])),
                training_seconds=metrics.get("training_seconds", 0.0),
                flags=flags,
            )
        )
    return rows


def build_review(
    registry: ModelRegistry, symbols: Sequence[str] | None = None
) -> dict[str, Any]:
    """Ranked rows per horizon (best skill first) plus an overview, JSON-ready; of the
    trained ``symbols`` only, if given."""
    chosen = [s for s in registry.symbols() if symbols is None or s in set(symbols)]
    all_metrics = [registry.load_metrics(symbol) for symbol in chosen]
    rows = [row for metrics in all_metrics for row in horizon_rows(metrics)]
    by_horizon: dict[int, list[HorizonRow]] = {}
    for row in rows:
        by_horizon.setdefault(row.horizon, []).append(row)
    ranked = {
        f"h{h}": [asdict(r) for r in sorted(group, key=_rank_key)]
        for h, group in sorted(by_horizon.items())
    }
    return {
        "models_dir": str(registry.root),
        "symbols": len(all_metrics),
        "horizons": ranked,
        "overview": {key: _overview(group) for key, group in ranked.items()},
        "flagged": sorted({r.symbol for r in rows if r.flags}),
    }


def _rank_key(row: HorizonRow) -> float:
    return -(row.skill_vs_random_walk if row.skill_vs_random_walk is not None else -math.inf)


def _overview(rows: list[dict[str, Any]]) -> dict[str, Any]:
    skills = [r["skill_vs_random_walk"] for r in rows if r["skill_vs_random_walk"] is not None]
    return {
        "models": len(rows),
        "beat_random_walk": sum(s > 0 for s in skills),
        "median_skill_vs_random_walk": statistics.median(skills) if skills else None,
    }
