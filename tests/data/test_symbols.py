"""Symbol validation: the gate before any symbol reaches a path or URL."""

from __future__ import annotations

import pytest

from ml.state_space.data.symbols import SYMBOL_PATTERN, InvalidSymbolError, validate_symbol


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("aapl", "AAPL"),
        ("  msft ", "MSFT"),
        ("BRK-B", "BRK-B"),
        ("brk.b", "BRK.B"),
        ("^GSPC", "^GSPC"),
        ("EURUSD=X", "EURUSD=X"),
        ("A" * 15, "A" * 15),
    ],
)
def test_valid_symbols_are_normalised(raw: str, expected: str) -> None:
    assert validate_symbol(raw) == expected
    assert SYMBOL_PATTERN.fullmatch(expected)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        ".",
        "..",
        "../x",
        "..\\x",
        "a/b",
        "/etc/passwd",
        ".hidden",
        "AA PL",
        "AA\tPL",
        "A" * 16,
        "^",
        "-=",
        "$AAPL",
        "ÄPPL",
        "maß",  # upper() makes it "MASS": still rejected
        "ﬁ",  # the ligature upper-cases to "FI"
        "AAPL;rm",
    ],
)
def test_malformed_or_path_like_symbols_are_rejected(raw: str) -> None:
    with pytest.raises(InvalidSymbolError, match="invalid symbol") as info:
        validate_symbol(raw)
    assert repr(raw) in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("raw", [None, 42, b"AAPL"])
def test_non_strings_are_rejected(raw: object) -> None:
    with pytest.raises(InvalidSymbolError, match="must be a string"):
        validate_symbol(raw)  # type: ignore[arg-type]
