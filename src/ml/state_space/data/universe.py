"""Named symbol universes (``resources/universes.json``) and symbol-list resolution."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from ml.state_space.data.symbols import InvalidSymbolError, validate_symbol

__all__ = [
    "BUNDLED_SYMBOLS",
    "UnknownUniverseError",
    "resolve_symbols",
    "universe_names",
]

_UNIVERSES_FILE = "universes.json"


class UnknownUniverseError(ValueError):
    """A spec that is neither a known universe name nor a list of valid symbols."""


@lru_cache(maxsize=1)
def _universes() -> dict[str, tuple[str, ...]]:
    """Parse the universes file once: upper-case name -> validated symbols."""
    path = resources.files("ml.state_space") / "resources" / _UNIVERSES_FILE
    raw = json.loads(path.read_text(encoding="utf-8"))
    return {
        name.upper(): tuple(validate_symbol(s) for s in entry["symbols"])
        for name, entry in raw.items()
    }


def universe_names() -> list[str]:
    """Names of the defined universes, e.g. ``["TIER_1", "BUNDLED"]``."""
    return list(_universes())


def resolve_symbols(spec: str) -> list[str]:
    """Resolve a universe name or a comma-separated symbol list to unique, validated symbols.

    ``"tier_1"`` -> the TIER_1 universe; ``"aapl, msft,AAPL"`` -> ``["AAPL", "MSFT"]``
    (first-seen order kept).
    """
    key = spec.strip().upper() if isinstance(spec, str) else ""
    if key in _universes():
        return list(_universes()[key])
    parts = [part for part in spec.split(",") if part.strip()] if key else []
    if not parts:
        raise UnknownUniverseError(
            f"empty symbol spec {spec!r}: give a universe name "
            f"({', '.join(universe_names())}) or a comma-separated list such as 'AAPL,MSFT'"
        )
    try:
        symbols = [validate_symbol(part) for part in parts]
    except InvalidSymbolError as exc:
        if len(parts) > 1:
            raise
        raise UnknownUniverseError(
            f"{spec!r} is neither a universe ({', '.join(universe_names())}) nor a valid "
            f"symbol list; give a universe name or comma-separated symbols like 'AAPL,MSFT'"
        ) from exc
    return list(dict.fromkeys(symbols))


#: The symbols available offline (bundled with the package).
BUNDLED_SYMBOLS: tuple[str, ...] = _universes()["BUNDLED"]
