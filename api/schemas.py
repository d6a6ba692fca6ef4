"""Request and response models: the service's public JSON contract."""

from __future__ import annotations

import datetime as dt
from itertools import pairwise
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.settings import MAX_BATCH_LIMIT
from ml.state_space.forecast import Forecast, HorizonForecast

MAX_HISTORY_ROWS = 10_000  # bounds the work one POST body can ask for
OPTIONAL_COLUMNS = ("open", "high", "low", "volume")
EARLIEST_PRICE_DATE = dt.date(1900, 1, 1)


class ErrorResponse(BaseModel):
    """Every error the service returns."""

    error: str = Field(description="machine-readable code, e.g. model_not_found")
    message: str = Field(description="what went wrong and what to do about it")
    details: list[dict[str, Any]] | None = Field(None, description="per-field validation errors")


class Interval(BaseModel):
    level: float = Field(description="nominal coverage, e.g. 0.8 for the 10%-90% quantiles")
    lower: float
    upper: float


class BacktestFigures(BaseModel):
    """Walk-forward backtest of this model family for this symbol and horizon, pooled over
    the test years, against the random walk on the same windows (docs/EVALUATION.md)."""

    years: list[int] = Field(description="first and last test year")
    n: int = Field(description="forecast windows scored")
    mae_skill: float | None = Field(description="1 - MAE(median) / MAE(no change); > 0 beats it")
    dm_mae_pvalue: float | None = Field(description="Diebold-Mariano p-value of the MAE gap")
    pinball_skill: float | None = Field(
        description="1 - pinball(model) / pinball(no change + trailing-volatility band)"
    )
    dm_pinball_pvalue: float | None = Field(description="Diebold-Mariano p-value, pinball loss")
    band_coverage: float | None = Field(description="share of outcomes in the 10-90% band")
    beats_baseline: bool = Field(
        description="significantly better (MAE), or no worse on both MAE and pinball loss"
    )
    symbols: int | None = Field(
        None,
        description="for a symbol the universe network never fitted (unseen): the held-out "
        "symbols these figures summarise (medians; beats_baseline: most of them do); "
        "null for a symbol's own figures",
    )

    @classmethod
    def from_figures(
        cls, figures: dict[str, Any] | None, years: list[int] | None
    ) -> BacktestFigures | None:
        return None if not figures or not years else cls(years=years, **figures)


class HorizonOut(BaseModel):
    horizon: int = Field(description="trading days ahead of as_of")
    target_date: dt.date = Field(description="the horizon-th NYSE session after as_of")
    log_return: dict[str, float] = Field(description="forecast log return per quantile level")
    price: dict[str, float] = Field(description="last_close * exp(log_return) per quantile level")
    point_forecast: float = Field(description="the median price")
    interval: Interval = Field(description="price interval between the outermost quantiles")
    test_skill_vs_random_walk: float | None = Field(
        description="1 - MAE(model) / MAE(random walk) on the held-out test set; > 0 beats it"
    )
    backtest: BacktestFigures | None = Field(
        description="walk-forward backtest figures; null when no backtest was published"
    )
    model_weight: float | None = Field(
        default=None,
        description="share of the network in these quantiles, the rest being the baseline "
        "(fitted on validation; 0 = no demonstrated skill, the baseline is served); null "
        "when the model has no blend",
    )
    serves: Literal["model", "blend", "baseline"] = Field(
        description="what these quantiles are: the network, its blend with the baseline, or "
        "the baseline alone (MAMBA_API_UNSKILLED_FORECAST chooses for horizons without "
        "demonstrated skill)"
    )
    baseline: str = Field(
        description="the baseline the model blends with and falls back to (docs/API.md): "
        "drift-garch-fhs (the default: the training drift as median, a GARCH(1,1) band "
        "with the quantiles of the standardised training returns), drift-garch (a normal "
        "GARCH band) or rw (no change, a trailing-volatility band)"
    )
    warning: str | None = Field(
        default=None, description="set when a forecast without demonstrated skill is served"
    )

    @classmethod
    def from_horizon(cls, horizon: HorizonForecast) -> HorizonOut:
        levels = sorted(horizon.price, key=float)
        lo, mid, hi = levels[0], min(levels, key=lambda q: abs(float(q) - 0.5)), levels[-1]
        return cls(
            horizon=horizon.horizon,
            target_date=dt.date.fromisoformat(horizon.target_date),
            log_return=horizon.log_return,
            price=horizon.price,
            point_forecast=horizon.price[mid],
            interval=Interval(
                level=round(float(hi) - float(lo), 6),
                lower=horizon.price[lo],
                upper=horizon.price[hi],
            ),
            test_skill_vs_random_walk=horizon.test_skill_vs_random_walk,
            backtest=BacktestFigures.from_figures(horizon.backtest, horizon.backtest_years),
            model_weight=horizon.model_weight,
            serves=horizon.serves,
            baseline=horizon.baseline,
            warning=horizon.warning,
        )


class ForecastResponse(BaseModel):
    symbol: str
    as_of: dt.date = Field(description="date of the last price used")
    last_close: float
    source: str | None = Field(
        description="price source: file (MAMBA_API_PRICES_FILE), cache, yahoo, bundled or client"
    )
    model_version: str
    trained_at: dt.datetime
    horizons: list[HorizonOut]
    data_warning: str | None = Field(
        None,
        description="set when the last 60 bars hold real-data artefacts (a stale or "
        "repeated bar, an unadjusted split, a missing session; docs/DATA.md)",
    )
    unseen: bool = Field(
        False,
        description="forecast by the universe network for a symbol it was never fitted on "
        "(gated on the prices given; backtest: the figures of held-out symbols)",
    )

    @classmethod
    def from_forecast(cls, forecast: Forecast) -> ForecastResponse:
        return cls(
            symbol=forecast.symbol,
            as_of=dt.date.fromisoformat(forecast.as_of),
            last_close=forecast.last_close,
            source=forecast.source,
            model_version=forecast.model_version,
            trained_at=dt.datetime.fromisoformat(forecast.trained_at),
            horizons=[HorizonOut.from_horizon(h) for h in forecast.horizons],
            data_warning=forecast.data_warning,
            unseen=forecast.unseen,
        )


class PriceRow(BaseModel):
    """One trading day of (adjusted) prices."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    date: dt.date
    close: float = Field(gt=0)
    open: float | None = Field(None, gt=0)
    high: float | None = Field(None, gt=0)
    low: float | None = Field(None, gt=0)
    volume: float | None = Field(None, ge=0)

    @field_validator("date")
    @classmethod
    def _plausible_date(cls, value: dt.date) -> dt.date:
        latest = dt.date.today() + dt.timedelta(days=366)
        if not EARLIEST_PRICE_DATE <= value <= latest:
            raise ValueError(f"date must be between {EARLIEST_PRICE_DATE} and {latest}")
        return value


class PriceHistory(BaseModel):
    """A client-supplied recent history, oldest first."""

    model_config = ConfigDict(extra="forbid")

    prices: list[PriceRow] = Field(min_length=2, max_length=MAX_HISTORY_ROWS)

    @model_validator(mode="after")
    def _check_rows(self) -> PriceHistory:
        dates = [row.date for row in self.prices]
        for before, after in pairwise(dates):
            if after <= before:
                raise ValueError(
                    f"dates must be strictly increasing (sorted, no duplicates): {after} "
                    f"follows {before}"
                )
        for column in OPTIONAL_COLUMNS:
            given = sum(getattr(row, column) is not None for row in self.prices)
            if 0 < given < len(self.prices):
                raise ValueError(
                    f"{column!r} is given on {given} of {len(self.prices)} rows: give it on "
                    "every row or on none"
                )
        return self

    def to_frame(self) -> pd.DataFrame:
        """The rows as a data-layer frame (``date`` index, present columns only)."""
        frame = pd.DataFrame([row.model_dump(exclude_none=True) for row in self.prices])
        frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("date")), name="date")
        frame = frame.astype("float64")
        frame.attrs = {"source": "client"}
        return frame


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    symbols: list[Annotated[str, Field(max_length=32)]] = Field(
        min_length=1, max_length=MAX_BATCH_LIMIT, description="tickers; duplicates are merged"
    )


class BatchItem(BaseModel):
    symbol: str
    status: int = Field(description="the HTTP status a single GET /predict would have returned")
    forecast: ForecastResponse | None = None
    error: ErrorResponse | None = None


class BatchResponse(BaseModel):
    results: list[BatchItem]


class DataRange(BaseModel):
    source: str | None = None
    first_date: dt.date | None = None
    last_date: dt.date | None = None
    rows: int | None = None


class ModelSummary(BaseModel):
    symbol: str
    version: str
    trained_at: dt.datetime
    data: DataRange

    @classmethod
    def from_metadata(cls, metadata: dict[str, Any]) -> ModelSummary:
        return cls(
            symbol=metadata["symbol"],
            version=metadata["version"],
            trained_at=metadata["trained_at"],
            data=DataRange(**metadata.get("data", {})),
        )


class BrokenModel(BaseModel):
    symbol: str
    message: str = Field(description="which file cannot be read, and how to fix it")


class UniverseSummary(ModelSummary):
    fitted_symbols: int = Field(description="symbols the network was fitted on")


class ModelList(BaseModel):
    models: list[ModelSummary] = Field(description="models that can be served")
    broken: list[BrokenModel] = Field(
        default_factory=list, description="models whose files cannot be read (503 on use)"
    )
    universe: UniverseSummary | None = Field(
        None,
        description="the universe network, which forecasts every symbol without a model of "
        "its own (marked unseen); null when the directory holds none",
    )


class ModelDetail(ModelSummary):
    metadata: dict[str, Any] = Field(description="model card: config, features, split, versions")
    metrics: dict[str, Any] = Field(description="training summary and held-out test metrics")
    backtest: dict[str, BacktestFigures] | None = Field(
        description="walk-forward figures per horizon (h1, h5, ...); null without a backtest"
    )
    versions: list[str] = Field(
        description="the complete versions kept on disk, oldest first, `version` the current "
        "one; `scripts/model_versions.py rollback` switches back to an older one"
    )


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    status: str
    models: int = Field(description="models found by the start-up scan")
