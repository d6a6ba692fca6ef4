"""Ticker symbol validation: the single gate before a symbol reaches a file path or URL."""

from __future__ import annotations

import re

__all__ = ["SYMBOL_PATTERN", "InvalidSymbolError", "validate_symbol"]

#: Upper-case Yahoo-style tickers: letters, digits and ``. - ^ =`` (``BRK-B``, ``^GSPC``,
#: ``EURUSD=X``), 1 to 15 characters. No slash, no whitespace, so never a path.
SYMBOL_PATTERN = re.compile(r"^[A-Z0-9.\-^=]{1,15}$")


class InvalidSymbolError(ValueError):
    """A ticker symbol that is malformed or could escape a directory."""


def validate_symbol(symbol: str) -> str:
    """Return ``symbol`` stripped and upper-cased, or raise :class:`InvalidSymbolError`.

    Besides :data:`SYMBOL_PATTERN`, a symbol must contain a letter or digit and must not
    start with ``.``, which rules out ``.``, ``..`` and hidden-file names.
    """
    if not isinstance(symbol, str):
        raise InvalidSymbolError(
            f"symbol must be a string, got {type(symbol).__name__}: {symbol!r}"
        )
    stripped = symbol.strip()
    normalised = stripped.upper()
    if (
        not stripped.isascii()  # upper() would turn "ß" into "SS" and let it through
        or not SYMBOL_PATTERN.fullmatch(normalised)
        or normalised.startswith(".")
        or not any(ch.isalnum() for ch in normalised)
    ):
        raise InvalidSymbolError(
            f"invalid symbol {symbol!r}: use 1-15 letters, digits or '.-^=' "
            "(e.g. 'AAPL', 'BRK-B', '^GSPC'), not starting with '.'"
        )
    return normalised
