"""The ``Forecaster`` contract, checked once for every model family.

Adding a family is one line in ``FORECASTERS`` (and one in ``models.families``). Each
forecaster is fitted once (a module-scoped fixture) on ~1,500 rows of AAPL ending
2015-12-31 and asked for forecasts at the origins of the first half of 2016 from the full
history, so a model whose fit takes seconds is fine here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from ml.state_space.data.sources import load_bundled
from ml.state_space.models.base import Forecaster
from ml.state_space.models.baselines import Drift, EmpiricalQuantiles, RandomWalk
from ml.state_space.models.garch import DriftGarch, DriftGarchFHS, Garch
from ml.state_space.models.gbm import GBMConfig, GlobalQuantileGBM
from ml.state_space.models.lstm import LSTMForecaster
from ml.state_space.models.mamba.forecaster import MambaForecaster
from ml.state_space.models.mingru import MinGRUForecaster
from tests.conftest import tiny_training_config

FORECASTERS: list[tuple[str, Callable[[], Forecaster]]] = [
    ("rw", RandomWalk),
    ("drift", Drift),
    ("empirical", EmpiricalQuantiles),
    ("garch", Garch),
    ("drift-garch", DriftGarch),
    ("drift-garch-fhs", DriftGarchFHS),
    (
        "lgbm",
        lambda: GlobalQuantileGBM(config=GBMConfig(max_trees=20, min_data_in_leaf=50, gate=False)),
    ),
    ("mamba", lambda: MambaForecaster(training_config=tiny_training_config(epochs=1))),
    ("lstm", lambda: LSTMForecaster(training_config=tiny_training_config(epochs=1))),
    ("mingru", lambda: MinGRUForecaster(training_config=tiny_training_config(epochs=1))),
]

FIT_ROWS = 1500


def test_every_registered_family_is_held_to_the_contract():
    from ml.state_space.models.families import FAMILIES, family

    assert {name for name, _ in FORECASTERS} == set(FAMILIES)
    with pytest.raises(ValueError, match="unknown model family 'nope'"):
        family("nope")
    assert {name for name, f in FAMILIES.items() if f.served} == {"mamba", "lgbm"}


PRICE_COLUMNS = ["open", "high", "low", "close"]


@dataclass(frozen=True)
class Fitted:
    """One forecaster after ``fit``, what ``fit`` returned, and its forecasts at ``origins``."""

    forecaster: Forecaster
    returned: object
    forecasts: np.ndarray


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    return load_bundled("AAPL")


@pytest.fixture(scope="module")
def origins(prices) -> pd.DatetimeIndex:
    return prices.loc["2016-01-01":"2016-06-30"].index


@pytest.fixture(scope="module", params=FORECASTERS, ids=[name for name, _ in FORECASTERS])
def fitted(request, prices, origins) -> Fitted:
    _, factory = request.param
    forecaster = factory()
    returned = forecaster.fit(prices.loc[:"2015-12-31"].iloc[-FIT_ROWS:])
    return Fitted(forecaster, returned, forecaster.predict_quantiles(prices, origins))


def test_implements_the_protocol_and_fit_returns_self(fitted):
    assert isinstance(fitted.forecaster, Forecaster)
    assert fitted.returned is fitted.forecaster
    assert isinstance(fitted.forecaster.name, str) and fitted.forecaster.name


def test_forecasts_have_one_finite_row_per_origin(fitted, origins):
    forecaster = fitted.forecaster
    shape = (len(origins), len(forecaster.horizons), len(forecaster.quantiles))
    assert fitted.forecasts.shape == shape
    assert np.issubdtype(fitted.forecasts.dtype, np.floating)
    assert np.isfinite(fitted.forecasts).all()


def test_quantiles_do_not_cross(fitted):
    assert (np.diff(fitted.forecasts, axis=-1) >= 0).all()


def test_forecasts_ignore_prices_after_the_last_origin(fitted, prices, origins):
    shaken = prices.copy()
    later = shaken.index > origins[-1]
    factor = np.random.default_rng(0).uniform(0.5, 2.0, later.sum())
    columns = [c for c in PRICE_COLUMNS if c in shaken.columns]
    shaken.loc[later, columns] = shaken.loc[later, columns].mul(factor, axis=0)

    again = fitted.forecaster.predict_quantiles(shaken, origins)
    np.testing.assert_allclose(again, fitted.forecasts, rtol=0, atol=1e-6)


def test_an_origin_without_a_close_is_rejected(fitted, prices):
    saturday = pd.DatetimeIndex(["2016-01-02"])
    with pytest.raises(ValueError, match="2016-01-02"):
        fitted.forecaster.predict_quantiles(prices, saturday)


def test_a_subset_of_origins_gets_the_same_rows(fitted, prices, origins):
    subset = origins[::7]
    rows = fitted.forecaster.predict_quantiles(prices, subset)
    np.testing.assert_allclose(rows, fitted.forecasts[::7], rtol=0, atol=1e-6)
