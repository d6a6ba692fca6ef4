"""Named symbol universes and symbol-list resolution.

Names: those of ``resources/universes.json`` (``TIER_1``, ``BUNDLED``), ``SP500``, every
stock of the bundled S&P 500 universe, and its two parts for judging a global model on
stocks it never saw: ``SP500_HOLDOUT``, the fifth of them whose name's SHA-256 is 0
modulo 5 (a rule that keeps a stock in its part whatever else joins the universe), and
``SP500_FIT``, the rest; ``SCREEN``, the quick design set that screens a network candidate
(docs/EVALUATION.md, the ladder): the ~120 stocks of ``SP500_FIT`` whose SHA-256 of
``"screen:" + name`` is 0 or 1 modulo 5. A spec may also be a file: a prices file (its
symbols) or a text file of symbols separated by commas, spaces or new lines (``#`` starts
a comment).
"""

from __future__ import annotations

import hashlib
import json
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ml.state_space.data.bundled import universe_symbols
from ml.state_space.data.prices_file import is_prices_file, symbols_in_prices_file
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
    named = {
        name.upper(): tuple(validate_symbol(s) for s in entry["symbols"])
        for name, entry in raw.items()
    }
    stocks = universe_symbols()
    holdout = tuple(filter(_held_out, stocks))
    fit = tuple(s for s in stocks if s not in holdout)
    screen = tuple(filter(_screened, fit))
    return {**named, "SP500": stocks, "SP500_FIT": fit, "SP500_HOLDOUT": holdout, "SCREEN": screen}


def _held_out(symbol: str) -> bool:
    """Whether ``symbol`` is in the held-out fifth of the universe."""
    return int(hashlib.sha256(symbol.encode()).hexdigest(), 16) % 5 == 0


def _screened(symbol: str) -> bool:
    """Whether ``symbol`` (of ``SP500_FIT``) is in the screen's two fifths."""
    return int(hashlib.sha256(f"screen:{symbol}".encode()).hexdigest(), 16) % 5 < 2


def universe_names() -> list[str]:
    """Names of the defined universes, e.g. ``["TIER_1", "BUNDLED", "SP500"]``."""
    return list(_universes())


def _symbols_file(path: Path) -> list[str]:
    """The symbols of a text file: separated by commas, spaces or new lines; ``#`` comments."""
    text = "\n".join(line.split("#")[0] for line in path.read_text(encoding="utf-8").splitlines())
    return [part for part in re.split(r"[,\s]+", text) if part]


def resolve_symbols(spec: str) -> list[str]:
    """Resolve a universe name, a file, or a comma-separated list to unique, valid symbols.

    ``"tier_1"`` -> the TIER_1 universe; ``"aapl, msft,AAPL"`` -> ``["AAPL", "MSFT"]``
    (first-seen order kept); ``"my_prices.csv"`` -> the symbols in that prices file.
    """
    key = spec.strip().upper() if isinstance(spec, str) else ""
    if key in _universes():
        return list(_universes()[key])
    path = Path(spec.strip()) if key else None
    if path is not None and (path.suffix or "/" in spec) and path.is_file():
        if is_prices_file(path):
            return symbols_in_prices_file(path)
        return list(dict.fromkeys(validate_symbol(s) for s in _symbols_file(path)))
    parts = [part for part in spec.split(",") if part.strip()] if key else []
    if not parts:
        raise UnknownUniverseError(
            f"empty symbol spec {spec!r}: give a universe name "
            f"({', '.join(universe_names())}), a file, or a comma-separated list such as "
            "'AAPL,MSFT'"
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


#: The BUNDLED universe: the 20 stocks and two indices every release has shipped (all
#: 407 bundled symbols are in :func:`ml.state_space.data.bundled.bundled_symbols`).
BUNDLED_SYMBOLS: tuple[str, ...] = _universes()["BUNDLED"]
