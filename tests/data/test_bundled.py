"""The bundled datasets: the universe adjusted as its README says, and the one-source rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.state_space.data import bundled
from ml.state_space.data.bundled import (
    INDICES,
    STOCKS_20,
    UNIVERSE,
    bundled_dataset,
    load_bundled,
    load_universe,
    sectors,
    universe_bars,
    universe_symbols,
)
from ml.state_space.data.frames import DataUnavailableError
from ml.state_space.data.sources import load_history
from ml.state_space.models.neural import data_window


def test_universe_symbols_are_the_404_of_the_file_with_meta_for_fb() -> None:
    symbols = universe_symbols()
    assert len(symbols) == len(set(symbols)) == 404
    assert set(load_universe()) == set(symbols)
    assert "META" in symbols and "FB" not in symbols
    assert load_bundled("META").index[0] == pd.Timestamp("2012-05-18")  # Facebook's IPO


def test_every_universe_symbol_has_a_gics_sector() -> None:
    by_symbol = sectors()
    assert set(by_symbol) == set(universe_symbols())
    assert len(set(by_symbol.values())) == 11
    assert by_symbol["AAPL"] == "Information Technology"


def test_open_high_low_are_adjusted_by_the_close_factor() -> None:
    bars = universe_bars("AAPL")
    factor = bars["close"] / bars["raw_close"]
    for column in ("open", "high", "low"):
        np.testing.assert_allclose(bars[column], bars[f"raw_{column}"] * factor, rtol=1e-12)
    assert bars["close"].iloc[-1] == bars["raw_close"].iloc[-1]  # factor 1 on the last day


def test_volume_is_adjusted_for_later_splits_only() -> None:
    bars = universe_bars("AAPL")
    later = bars["split"][::-1].cumprod()[::-1].shift(-1, fill_value=1.0)
    np.testing.assert_allclose(bars["volume"], bars["raw_volume"] * later, rtol=1e-12)
    # 2:1 (2000, 2005), 7:1 (2014, coded 7.000007), 4:1 (2020): 1999 volume x 112
    assert later.iloc[0] == pytest.approx(112, rel=1e-5)
    assert later.loc["2020-08-28"] == 4 and later.loc["2020-08-31"] == 1
    dividend_day = bars.index[bars["dividend"] > 0][-1]  # a dividend leaves volume alone
    assert later.loc[dividend_day] == 1


def test_a_universe_stock_always_comes_from_the_universe() -> None:
    frame = load_bundled("AAPL")
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert frame.attrs == {
        "symbol": "AAPL",
        "source": "bundled",
        "dataset": UNIVERSE,
        "last_date": "2021-04-21",
    }
    assert frame.index[0] == pd.Timestamp("1999-11-01")


def test_the_close_only_file_serves_rrc_and_whoever_names_it() -> None:
    assert bundled_dataset("RRC") == STOCKS_20
    rrc = load_bundled("RRC")
    assert list(rrc.columns) == ["close"] and rrc.attrs["dataset"] == STOCKS_20
    old = load_bundled("AAPL", dataset=STOCKS_20)
    assert list(old.columns) == ["close"] and len(old) == 8313
    assert old.attrs["last_date"] == "2022-12-28"
    assert bundled_dataset("^GSPC") == INDICES and bundled_dataset("ZZZZ") is None


def test_asking_a_dataset_for_a_symbol_it_lacks_fails_clearly() -> None:
    with pytest.raises(DataUnavailableError, match="not in the sp500-20 dataset"):
        load_bundled("NVDA", dataset=STOCKS_20)
    with pytest.raises(ValueError, match="unknown bundled dataset 'yahoo'"):
        load_bundled("AAPL", dataset="yahoo")
    with pytest.raises(DataUnavailableError, match="SP500 universe"):
        load_bundled("ZZZZ")


def test_offline_history_and_the_card_record_the_dataset(tmp_path: Path) -> None:
    frame = load_history("NVDA", offline=True, cache_dir=tmp_path)
    assert frame.attrs["dataset"] == UNIVERSE
    window = data_window(frame)
    assert window.dataset == UNIVERSE and window.source == "bundled"


def test_the_universe_is_parsed_once_per_process() -> None:
    assert bundled._universe_frames() is bundled._universe_frames()
