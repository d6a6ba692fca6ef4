"""Walk-forward backtest: refit every model before each test year, forecast every day of it.

For test year ``Y`` and every model, the model is fitted on the history that ends
``embargo`` trading days (the longest horizon) before the first trading day of ``Y``,
so no training target reaches into the test year; it then forecasts from every
trading day of ``Y`` (features as of that day). The result is one long table,
``model, symbol, fold, origin_date, horizon, q<level>..., actual``, scored by
:mod:`ml.state_space.evaluation.scoring` with every model next to the baselines on
the same windows. See ``docs/EVALUATION.md``.

One task per (symbol, fold, model, seed) runs in a process pool (or on Dask); a
baseline task costs milliseconds. A *global* model (``lgbm``, or a neural model with
``TrainingConfig.pooled``: one network for all series) is one task per (fold, seed): it
is fitted on every symbol's history before the fold, with one cut-off date for all, and
forecasts each symbol. With ``warm_start`` a neural model's folds of one
symbol run in year order in one task, each fit starting from the previous fold's
weights. Several seeds make a seed ensemble of a neural model: its quantiles are
averaged.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import queue
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from multiprocessing.managers import SyncManager
from typing import Any

import numpy as np
import pandas as pd

from ml.state_space.data.artefacts import screen, touches_flagged
from ml.state_space.evaluation.progress import BacktestProgress
from ml.state_space.evaluation.run_store import RunStore, data_fingerprint
from ml.state_space.execution.pool import (
    init_helper_process,
    process_pool,
    report_progress,
)
from ml.state_space.features.cross_section import CrossSection
from ml.state_space.features.engineer import TimeSeriesFeatureEngineer
from ml.state_space.models.base import Forecaster, forward_log_returns
from ml.state_space.models.config import TrainingConfig
from ml.state_space.models.families import FAMILIES, family
from ml.state_space.models.gbm import GBMConfig, GlobalQuantileGBM
from ml.state_space.models.servable import Servable

logger = logging.getLogger(__name__)

NEURAL_MODELS = tuple(name for name, f in FAMILIES.items() if f.kind == "neural")
GLOBAL_MODELS = tuple(name for name, f in FAMILIES.items() if f.kind == "global")
ALL_MODELS = tuple(FAMILIES)
SEEDED_MODELS = tuple(name for name, f in FAMILIES.items() if f.seeded)
# a (symbol, year) is tested only with a year of feature rows before its fold's cut
MIN_FIT_ROWS = TimeSeriesFeatureEngineer.warmup + 252


@dataclass(frozen=True)
class BacktestConfig:
    """Which years, which models, and how the neural models are trained."""

    years: tuple[int, ...]
    models: tuple[str, ...] = ALL_MODELS
    training: TrainingConfig = field(default_factory=TrainingConfig)
    gbm: GBMConfig = field(default_factory=GBMConfig)
    seeds: tuple[int, ...] = (42,)
    warm_start: bool = False  # neural folds start from the previous fold's weights

    def __post_init__(self) -> None:
        unknown = sorted(set(self.models) - set(ALL_MODELS))
        if unknown:
            raise ValueError(f"unknown models {unknown}; choose from {list(ALL_MODELS)}")
        if not self.years or not self.seeds:
            raise ValueError("a backtest needs at least one test year and one seed")
        if "rw" not in self.models:
            raise ValueError("the random walk 'rw' is the baseline every model is scored against")
        if self.warm_start and self.training.pooled:
            raise ValueError("warm starts are for per-series networks, not pooled ones")

    @property
    def horizons(self) -> tuple[int, ...]:
        return self.training.model.horizons

    def is_global(self, model: str) -> bool:
        """Whether ``model`` is fitted once per fold on every series (one task per fold)."""
        return model in GLOBAL_MODELS or (model in NEURAL_MODELS and self.training.pooled)

    @property
    def quantiles(self) -> tuple[float, ...]:
        return self.training.model.quantiles

    @property
    def embargo(self) -> int:
        return max(self.horizons)

    def to_dict(self) -> dict[str, Any]:
        """Every setting, JSON-ready (a run's record; what a resumed run must match)."""
        return {
            "years": list(self.years),
            "models": list(self.models),
            "seeds": list(self.seeds),
            "warm_start": self.warm_start,
            "training": self.training.to_dict(),
            "gbm": asdict(self.gbm),
        }

    def settings(self, model: str) -> dict[str, Any]:
        """The configuration ``model`` is fitted with, as its model card's ``config``
        records it (a published backtest describes only models of this configuration)."""
        if model == "lgbm":
            return GlobalQuantileGBM(
                self.horizons, self.quantiles, self.gbm, self.seeds[0]
            ).to_dict()
        return self.training.to_dict()


def make_forecaster(model: str, config: BacktestConfig, seed: int) -> Forecaster:
    """A fresh, unfitted forecaster of ``model`` with the backtest's horizons and quantiles
    (a pooled network's, fitted through ``fit_many``, with ``config.training.pooled``)."""
    return family(model).make(config.training, config.gbm, seed)


@dataclass(frozen=True)
class Fold:
    """One test year: fit on rows ``[0, fit_end)``, forecast from ``origins``."""

    year: int
    fit_end: int
    origins: pd.DatetimeIndex


def walk_forward_fold(index: pd.DatetimeIndex, year: int, embargo: int) -> Fold:
    """The fold of test ``year``; the last fitted row's every target lies at least
    ``embargo`` rows before the first test origin. Raises ``ValueError`` when the history
    has no trading day in ``year``."""
    in_year = np.flatnonzero(index.year == year)
    if len(in_year) == 0:
        raise ValueError(
            f"no prices in {year} (history {index[0].date()}..{index[-1].date()}); "
            "choose test years inside the history"
        )
    return Fold(year, max(int(in_year[0]) - embargo, 0), index[in_year])


@dataclass
class BacktestTask:
    """One model fitted for one symbol and year; picklable, so it can cross processes."""

    symbol: str
    prices: pd.DataFrame
    year: int
    model: str
    seed: int
    config: BacktestConfig

    @property
    def key(self) -> str:
        return f"backtest-{self.model}-{self.symbol}-{self.year}-s{self.seed}"

    @property
    def kind(self) -> tuple[str, str]:
        """What the task's duration is like: one model's fit of one series."""
        return ("single", self.model)

    @property
    def fold(self) -> Fold:
        return walk_forward_fold(self.prices.index, self.year, self.config.embargo)

    def fitted(self, warm_start: Forecaster | None = None) -> tuple[Forecaster, Fold]:
        """The model fitted on the fold's history (a neural one starting from the weights
        of ``warm_start``, if given), and the fold."""
        fold = self.fold
        forecaster = make_forecaster(self.model, self.config, self.seed)
        history = self.prices.iloc[: fold.fit_end]
        if self.model in NEURAL_MODELS:
            forecaster.fit(
                history, symbol=self.symbol, warm_start=warm_start, on_epoch=self._report
            )
        else:
            forecaster.fit(history)
        return forecaster, fold

    def rows(self, forecaster: Forecaster, fold: Fold) -> pd.DataFrame:
        """The fitted model's forecasts from the fold's origins: the long forecast rows,
        with the model's share per horizon where a gate blends it with its fallback."""
        quantiles = forecaster.predict_quantiles(self.prices, fold.origins)
        weights = forecaster.model_weights() if isinstance(forecaster, Servable) else {}
        return forecast_rows(self, fold, quantiles, weights)

    def run(self) -> pd.DataFrame:
        """Fit on the fold's history and forecast its origins."""
        return self.rows(*self.fitted())

    def _report(self, _name: str, record: dict[str, Any]) -> None:
        report_progress(self.key, record)


@dataclass
class WarmStartTask:
    """One neural model's folds of one symbol, in year order: each fit starts from the
    weights of the previous fold's (which never saw a later year)."""

    folds: list[BacktestTask]

    @property
    def key(self) -> str:
        first, last = self.folds[0], self.folds[-1]
        return f"backtest-{first.model}-{first.symbol}-{first.year}-{last.year}-warm-s{first.seed}"

    @property
    def kind(self) -> tuple[str, str]:
        return ("warm", self.folds[0].model)

    def run(self) -> pd.DataFrame:
        rows, previous = [], None
        for task in sorted(self.folds, key=lambda t: t.year):
            previous, fold = task.fitted(warm_start=previous)
            rows.append(task.rows(previous, fold))
        return pd.concat(rows, ignore_index=True)


@dataclass
class GlobalBacktestTask:
    """One global model fitted on the fit symbols' histories before a year; it forecasts
    each member (the test symbols that have prices in that year), fitted or not."""

    members: list[BacktestTask]
    histories: dict[str, pd.DataFrame]  # the fit symbols' screened histories

    @property
    def key(self) -> str:
        first = self.members[0]
        return f"backtest-{first.model}-all-{first.year}-s{first.seed}"

    @property
    def model(self) -> str:
        return self.members[0].model

    @property
    def kind(self) -> tuple[str, str]:
        return ("global", self.model)

    def run(self) -> pd.DataFrame:
        """Fit on all histories before one cut-off date (the earliest of the members'
        fold ends, so no member's test year is seen), then forecast every member."""
        first = self.members[0]
        folds = [member.fold for member in self.members]
        cutoff = min(m.prices.index[f.fit_end] for m, f in zip(self.members, folds, strict=True))
        histories = {s: h[h.index < cutoff] for s, h in self.histories.items()}
        forecaster = make_forecaster(first.model, first.config, first.seed)
        fitted = {s: h for s, h in histories.items() if len(h)}
        if isinstance(forecaster, GlobalQuantileGBM) and first.config.gbm.cross_section:
            # each date's context uses closes up to that date only: the test years' too
            forecaster.fit_many(fitted, CrossSection.from_histories(self.histories))
        elif isinstance(forecaster, GlobalQuantileGBM):
            forecaster.fit_many(fitted)
        else:  # a pooled network: its epochs are the task's progress
            forecaster.fit_many(fitted, on_epoch=self._report)
        rows = []
        for member, fold in zip(self.members, folds, strict=True):
            try:
                series = forecaster.for_series(member.symbol, member.prices.iloc[: fold.fit_end])
            except ValueError as error:  # e.g. an unseen series too short to be gated
                logger.warning("%s: no %s forecast: %s", member.key, member.model, error)
                continue
            rows.append(member.rows(series, fold))
        if not rows:
            raise ValueError(f"{self.key}: no member could be forecast (see the warnings)")
        return pd.concat(rows, ignore_index=True)

    def _report(self, _name: str, record: dict[str, Any]) -> None:
        report_progress(self.key, record)


Task = BacktestTask | GlobalBacktestTask | WarmStartTask


@dataclass
class TaskResult:
    """A task's forecast rows and its own duration in the worker (no queueing time)."""

    rows: pd.DataFrame
    seconds: float


def timed_run_task(task: Task) -> TaskResult:
    """``task.run()``, timed; reports ``{"epoch": 0}`` to the run's progress as it starts."""
    report_progress(task.key, {"epoch": 0})
    started = time.perf_counter()
    return TaskResult(task.run(), time.perf_counter() - started)


def forecast_rows(
    task: BacktestTask,
    fold: Fold,
    quantiles: np.ndarray,
    weights: Mapping[int, float] | None = None,
) -> pd.DataFrame:
    """(n, H, Q) quantiles -> long rows; origins whose target is past the data are dropped.
    ``model_weight`` is the gate's share of the model per horizon (``weights``; NaN for a
    model without a gate)."""
    weights = weights or {}
    positions = task.prices.index.get_indexer(fold.origins)
    frames = []
    for i, horizon in enumerate(task.config.horizons):
        frame = pd.DataFrame(
            {
                "model": task.model,
                "symbol": task.symbol,
                "fold": task.year,
                "origin_date": fold.origins,
                "horizon": horizon,
                **{f"q{q:g}": quantiles[:, i, j] for j, q in enumerate(task.config.quantiles)},
                "actual": forward_log_returns(task.prices, horizon)[positions],
                "model_weight": weights.get(horizon, np.nan),
            }
        )
        frames.append(frame)
    rows = pd.concat(frames, ignore_index=True)
    return rows[rows["actual"].notna() & ~flagged_rows(task, rows)].reset_index(drop=True)


def flagged_rows(task: BacktestTask, rows: pd.DataFrame) -> np.ndarray:
    """Rows whose input window (the network's ``seq_len`` rows) or target touches a day the
    artefact policy flagged: left out of scoring, for every model alike."""
    flagged = pd.DatetimeIndex(task.prices.attrs.get("flagged", []))
    out = np.zeros(len(rows), dtype=bool)
    if flagged.empty:
        return out
    lookback = task.config.training.model.seq_len
    for horizon in task.config.horizons:
        at = (rows["horizon"] == horizon).to_numpy()
        origins = pd.DatetimeIndex(rows.loc[at, "origin_date"])
        out[at] = touches_flagged(task.prices.index, flagged, origins, horizon, lookback)
    return out


@dataclass
class TaskOutcome:
    """How one task ended."""

    key: str
    seconds: float
    error: str | None = None


@dataclass
class BacktestResult:
    """Every forecast row, and how every task went."""

    forecasts: pd.DataFrame
    outcomes: list[TaskOutcome]
    seconds: float
    skipped: list[str] = field(default_factory=list)
    resumed: int = 0  # tasks finished by an earlier run of the same settings and data

    @property
    def failures(self) -> list[TaskOutcome]:
        return [o for o in self.outcomes if o.error is not None]


def plan_tasks(
    prices_by_symbol: dict[str, pd.DataFrame],
    config: BacktestConfig,
    fit_prices: dict[str, pd.DataFrame] | None = None,
) -> tuple[list[Task], list[str]]:
    """Every (symbol, year, model, seed) fit as a task, grouped where fits depend on each
    other: a global model's symbols per (year, seed), warm-started folds per (symbol,
    seed). The slow tasks come first (no lone straggler at the end); baselines are
    deterministic and need one seed. Global models are fitted on ``fit_prices`` (default:
    the test symbols' own) and forecast the test symbols. Returns the tasks and the
    (symbol, year) pairs skipped: no such year, or less than ``MIN_FIT_ROWS`` before it."""
    fits, skipped = [], []
    screened = {s: screen(s, p).prices for s, p in prices_by_symbol.items()}  # docs/DATA.md
    fit_histories = screened
    if fit_prices is not None:
        fit_histories = {
            s: screened[s] if s in screened else screen(s, p).prices for s, p in fit_prices.items()
        }
    models = config.models
    for symbol, prices in screened.items():
        for year in config.years:
            reason = _untestable(prices, year, config.embargo)
            if reason:
                skipped.append(f"{symbol} {year}: {reason}")
                continue
            for model in models:
                seeds = config.seeds if model in SEEDED_MODELS else config.seeds[:1]
                fits.extend(BacktestTask(symbol, prices, year, model, s, config) for s in seeds)
    tasks: list[Task] = []
    groups: dict[tuple[Any, ...], list[BacktestTask]] = {}
    for fit in fits:
        if config.is_global(fit.model):
            groups.setdefault(("global", fit.model, fit.seed, fit.year), []).append(fit)
        elif fit.model in NEURAL_MODELS and config.warm_start:
            groups.setdefault(("warm", fit.model, fit.seed, fit.symbol), []).append(fit)
        else:
            tasks.append(fit)
    for (kind, *_), group in groups.items():
        if kind == "global":
            tasks.append(GlobalBacktestTask(group, fit_histories))
        else:
            tasks.append(WarmStartTask(group))
    return sorted(tasks, key=_cost_rank), skipped


def _untestable(prices: pd.DataFrame, year: int, embargo: int) -> str | None:
    """Why ``year`` cannot be a test year of ``prices``, or None if it can."""
    span = f"history {prices.index[0].date()}..{prices.index[-1].date()}"
    if year not in set(prices.index.year):
        return f"no prices that year ({span})"
    fit_rows = walk_forward_fold(prices.index, year, embargo).fit_end
    if fit_rows < MIN_FIT_ROWS:
        return f"{fit_rows} rows before its fold, fewer than {MIN_FIT_ROWS} ({span})"
    return None


def _cost_rank(task: Task) -> int:
    """Global and warm-started fits first, then single neural fits, then the baselines
    that take milliseconds."""
    if not isinstance(task, BacktestTask):
        return 0
    return 1 if task.model in NEURAL_MODELS else 2


def run_manifest(
    config: BacktestConfig,
    prices_by_symbol: Mapping[str, pd.DataFrame],
    fit_prices: Mapping[str, pd.DataFrame] | None = None,
) -> dict[str, Any]:
    """What a run's forecasts depend on: its settings and a fingerprint of its data (a
    resumed run must match it)."""
    return {
        "settings": config.to_dict(),
        "data": {
            "symbols": data_fingerprint(prices_by_symbol),
            "fit_symbols": data_fingerprint(fit_prices) if fit_prices is not None else None,
        },
    }


async def run_backtest(
    prices_by_symbol: dict[str, pd.DataFrame],
    config: BacktestConfig,
    parallel: int = 1,
    scheduler: str | None = None,
    progress: BacktestProgress | None = None,
    fit_prices: dict[str, pd.DataFrame] | None = None,
    store: RunStore | None = None,
    resume: bool = False,
) -> BacktestResult:
    """Run every task (process pool of ``parallel`` workers, or Dask at ``scheduler``);
    global models are fitted on ``fit_prices`` (default: ``prices_by_symbol``). With a
    ``store`` each finished task's rows are written to disk as it ends, and with
    ``resume`` the tasks an earlier run of the same settings and data finished there are
    not run again (``ResumeMismatch`` if they differ)."""
    started = time.perf_counter()
    tasks, skipped = plan_tasks(prices_by_symbol, config, fit_prices)
    finished: set[str] = set()
    if store is not None:
        finished = store.start(run_manifest(config, prices_by_symbol, fit_prices), resume)
    for reason in skipped:
        logger.info("skipped %s", reason)
    resumed = len(tasks) - sum(task.key not in finished for task in tasks)
    logger.info(
        "backtest: %d tasks on %d symbols, %d finished before",
        len(tasks),
        len(prices_by_symbol),
        resumed,
    )
    progress = progress or BacktestProgress(store)
    progress.planned(tasks, finished)
    results: dict[str, pd.DataFrame] = {}
    outcomes: list[TaskOutcome] = []

    def record(task: Task, result: TaskResult | BaseException, seconds: float) -> None:
        if isinstance(result, BaseException):
            outcome = TaskOutcome(task.key, seconds, f"{type(result).__name__}: {result}")
            logger.warning("%s failed: %s", task.key, outcome.error)
        else:
            outcome = TaskOutcome(task.key, result.seconds)
            if store is not None:
                store.save(task.key, result.rows)
            else:
                results[task.key] = result.rows
        outcomes.append(outcome)
        progress.finished(outcome.key, outcome.seconds, outcome.error)

    if scheduler:
        from ml.state_space.execution.dask import run_on_dask

        todo = [task for task in tasks if task.key not in finished]
        async for task, result, seconds in run_on_dask(scheduler, todo, timed_run_task):
            record(task, result, seconds)
    else:
        # a global fit uses every core itself: one at a time is 1.7x faster than two side
        # by side on 2 cores, and holds half the memory (docs/PERFORMANCE.md); the pools
        # are sized by every planned task, so a resumed task runs with the same threads
        for group, workers in _local_groups(tasks, parallel):
            todo = [t for t in group if t.key not in finished]
            await _run_locally(todo, workers, len(group), record, progress)
    progress.close()
    if store is not None:
        keys = store.finished() & {task.key for task in tasks}
        frames = store.rows(sorted(keys))
    else:
        frames = [results[key] for key in sorted(results)]
    forecasts = ensemble_seeds(pd.concat(frames, ignore_index=True)) if frames else _empty(config)
    return BacktestResult(
        forecasts, outcomes, time.perf_counter() - started, skipped, resumed=resumed
    )


def _local_groups(tasks: list[Task], parallel: int) -> list[tuple[list[Task], int]]:
    """The global fits, one at a time, then the rest on ``parallel`` workers."""
    global_fits = [t for t in tasks if isinstance(t, GlobalBacktestTask)]
    rest = [t for t in tasks if not isinstance(t, GlobalBacktestTask)]
    return [(global_fits, 1), (rest, parallel)]


async def _run_locally(
    tasks: Sequence[Task],
    parallel: int,
    planned: int,
    record: Callable[[Task, Any, float], None],
    progress: BacktestProgress,
) -> None:
    """Run ``tasks`` on up to ``parallel`` processes, as many as for the ``planned`` tasks
    of their group (so a resumed task gets the threads it had); the workers' start and
    epoch records go to ``progress``."""
    if not tasks:
        return
    loop = asyncio.get_running_loop()
    context = multiprocessing.get_context("spawn")
    manager = SyncManager(ctx=context)
    manager.start(init_helper_process)
    events = manager.Queue()
    pump = asyncio.create_task(_pump_events(events, progress))
    try:
        with process_pool(parallel, planned, events) as pool:

            async def one(task: Task) -> None:
                started = time.perf_counter()
                try:
                    result = await loop.run_in_executor(pool, timed_run_task, task)
                except Exception as error:  # one task's failure never stops the others
                    result = error
                record(task, result, time.perf_counter() - started)

            await asyncio.gather(*(one(task) for task in tasks))
    finally:
        pump.cancel()
        manager.shutdown()


async def _pump_events(events: Any, progress: BacktestProgress) -> None:
    """Forward the workers' ``(key, record)`` events to ``progress``."""
    while True:
        try:
            key, record = await asyncio.to_thread(events.get, True, 0.2)
        except queue.Empty:
            continue
        except (EOFError, BrokenPipeError, ConnectionError):
            return
        progress.epoch(key, record)


def ensemble_seeds(forecasts: pd.DataFrame) -> pd.DataFrame:
    """Average the quantiles of a model's seeds (one row per model, symbol, origin, horizon)."""
    keys = ["model", "symbol", "fold", "origin_date", "horizon"]
    return forecasts.groupby(keys, sort=True, as_index=False).mean(numeric_only=True)


def _empty(config: BacktestConfig) -> pd.DataFrame:
    columns = ["model", "symbol", "fold", "origin_date", "horizon"]
    quantiles = [f"q{q:g}" for q in config.quantiles]
    return pd.DataFrame(columns=[*columns, *quantiles, "actual", "model_weight"])


def backtest(
    prices_by_symbol: dict[str, pd.DataFrame],
    config: BacktestConfig,
    parallel: int = 1,
    scheduler: str | None = None,
    fit_prices: dict[str, pd.DataFrame] | None = None,
    store: RunStore | None = None,
    resume: bool = False,
) -> BacktestResult:
    """Synchronous :func:`run_backtest`, for notebooks and scripts."""
    return asyncio.run(
        run_backtest(
            prices_by_symbol, config, parallel, scheduler, None, fit_prices, store, resume
        )
    )
