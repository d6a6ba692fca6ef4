"""Named universes and symbol-list resolution."""

from __future__ import annotations

import pytest

from ml.state_space.data.symbols import InvalidSymbolError
from ml.state_space.data.universe import (
    BUNDLED_SYMBOLS,
    UnknownUniverseError,
    resolve_symbols,
    universe_names,
)

BUNDLED_STOCKS = [
    "AAPL", "AMD", "BAC", "BBY", "CVX", "GE", "HD", "JNJ", "JPM", "KO",
    "LLY", "MRK", "MSFT", "PEP", "PFE", "PG", "RRC", "UNH", "WMT", "XOM",
]  # fmt: skip


def test_tier_1_is_50_unique_symbols_including_the_bundled_stocks() -> None:
    tier_1 = resolve_symbols("TIER_1")
    assert len(tier_1) == len(set(tier_1)) == 50
    assert set(BUNDLED_STOCKS) <= set(tier_1)


def test_bundled_is_the_20_stocks_plus_two_indices() -> None:
    assert resolve_symbols("BUNDLED") == [*BUNDLED_STOCKS, "^GSPC", "^IXIC"]
    assert list(BUNDLED_SYMBOLS) == resolve_symbols("BUNDLED")
    assert {"TIER_1", "BUNDLED"} <= set(universe_names())


@pytest.mark.parametrize("spec", ["tier_1", " Tier_1 "])
def test_universe_names_are_case_insensitive(spec: str) -> None:
    assert resolve_symbols(spec) == resolve_symbols("TIER_1")


def test_comma_list_is_validated_deduplicated_in_order() -> None:
    assert resolve_symbols("msft, aapl,,MSFT , ^gspc") == ["MSFT", "AAPL", "^GSPC"]
    assert resolve_symbols("nvda") == ["NVDA"]


@pytest.mark.parametrize("spec", ["TIER_9", "no such universe", ""])
def test_unknown_universe_names_the_known_ones(spec: str) -> None:
    with pytest.raises(UnknownUniverseError, match="TIER_1") as info:
        resolve_symbols(spec)
    assert isinstance(info.value, ValueError)


def test_bad_symbol_in_a_list_is_reported() -> None:
    with pytest.raises(InvalidSymbolError, match=r"\.\./x"):
        resolve_symbols("AAPL,../x")


def test_the_universe_splits_into_a_fit_part_and_a_fifth_held_out() -> None:
    stocks, fit, holdout = (resolve_symbols(n) for n in ("SP500", "SP500_FIT", "sp500_holdout"))
    assert not set(fit) & set(holdout) and sorted(fit + holdout) == sorted(stocks)
    assert 0.15 < len(holdout) / len(stocks) < 0.25
    assert resolve_symbols("SP500_HOLDOUT") == holdout  # the same stocks every time


def test_the_screen_is_a_fixed_sample_of_about_120_fit_stocks_none_held_out() -> None:
    screen, fit = resolve_symbols("SCREEN"), resolve_symbols("SP500_FIT")
    assert set(screen) <= set(fit) and 110 <= len(screen) <= 130
    assert screen == [s for s in fit if s in set(screen)]  # the universe's order
    assert "SCREEN" in universe_names()
