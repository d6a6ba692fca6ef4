"""The baseline a neural forecaster blends with and falls back to.

Where a network shows no skill on its validation block, a forecaster serves its
*fallback* (``TrainingConfig.fallback``) instead; where it does, the network is blended
with it (``models.postprocess``). The fallback is fitted with the network, on the same
history, and its state travels on the model card, so training, the backtest and the
service forecast through the same object.

- ``rw``: the random walk: no change, a band from the trailing 60-day volatility.
- ``drift-garch``: the training drift as the median, a GARCH(1,1)-t band.
- ``drift-garch-fhs`` (the default): the same, with the band's quantiles those of the
  standardised training returns (filtered historical simulation). On the walk-forward
  backtest of the 22 bundled series, 2008-2017, it beats the random walk's pinball loss
  for 82-95% of them at every horizon, its median is never significantly worse than "no
  change", and its 10-90% band covers 82-83% (docs/EVALUATION.md, round 4).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ml.state_space.models.baselines import RandomWalk
from ml.state_space.models.garch import MIN_FIT_RETURNS, DriftGarch, DriftGarchFHS

__all__ = [
    "FALLBACKS",
    "FALLBACK_NAMES",
    "Fallback",
    "fallback_from_dict",
    "fallback_min_rows",
    "fallback_to_dict",
]

Fallback = RandomWalk | DriftGarch
FALLBACKS: dict[str, type[Fallback]] = {
    "rw": RandomWalk,
    "drift-garch": DriftGarch,
    "drift-garch-fhs": DriftGarchFHS,
}
FALLBACK_NAMES = tuple(FALLBACKS)


def fallback_min_rows(name: str) -> int:
    """Price rows the fallback ``name`` needs to fit."""
    fitted = FALLBACKS[name]
    return MIN_FIT_RETURNS + 1 if issubclass(fitted, DriftGarch) else 2


def fallback_to_dict(fallback: Fallback) -> dict[str, Any]:
    """A fitted fallback's name and state, for the model card."""
    return {"name": fallback.name, **fallback.to_dict()}


def fallback_from_dict(
    data: dict[str, Any] | None, horizons: Sequence[int], quantiles: Sequence[float]
) -> Fallback:
    """The fitted fallback a card describes; a card without one (written before
    fallbacks existed) falls back to the random walk, as it did."""
    if data is None:
        return RandomWalk(horizons, quantiles)
    state = dict(data)
    name = state.pop("name")
    if name not in FALLBACKS:
        raise ValueError(f"unknown fallback {name!r}; known: {sorted(FALLBACKS)}")
    return FALLBACKS[name].from_dict(state, horizons, quantiles)
