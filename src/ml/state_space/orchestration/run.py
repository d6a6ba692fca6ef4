"""Train many symbols at once: asyncio for I/O, processes (or Dask) for training.

The event loop fetches every symbol's history concurrently (blocking I/O runs
in threads), then hands one :func:`run_job` per symbol to a pool of *spawned*
processes (TensorFlow is not fork-safe) or to a Dask cluster. Results come back
as bytes and are persisted here, atomically, as each finishes; one symbol's
failure never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import queue
import shutil
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing.managers import SyncManager
from typing import Any, Protocol

import pandas as pd

from ml.state_space.data.artefacts import screen
from ml.state_space.data.quality import DataQualityError
from ml.state_space.data.sources import DataUnavailableError, load_history
from ml.state_space.engine.loop import has_unfinished_fit
from ml.state_space.execution.pool import init_helper_process, process_pool
from ml.state_space.models.config import TrainingConfig
from ml.state_space.orchestration.worker import TrainJob, run_job
from ml.state_space.registry import ModelRegistry
from ml.state_space.training.trainer import TrainingResult

logger = logging.getLogger(__name__)

FETCH_CONCURRENCY = 8


@dataclass
class SymbolOutcome:
    """How one symbol's run ended, for the summary table and the run JSON."""

    symbol: str
    status: str  # trained | skipped | no_data | bad_data | failed | cancelled
    reason: str = ""
    seconds: float = 0.0
    best_epoch: int | None = None
    val_loss: float | None = None
    test_skill: dict[str, float | None] = field(default_factory=dict)
    version: str | None = None

    @property
    def ok(self) -> bool:
        """Whether this outcome is acceptable for the run's exit status."""
        return self.status in ("trained", "skipped", "no_data")


class ProgressSink(Protocol):
    """Where the orchestrator reports what is happening (a terminal display, logs)."""

    def queued(self, symbol: str) -> None: ...
    def epoch(self, symbol: str, record: dict[str, Any]) -> None: ...
    def finished(self, outcome: SymbolOutcome) -> None: ...


@dataclass
class RunSummary:
    run_id: str
    started_at: str
    seconds: float
    parallel: int
    scheduler: str | None
    config: dict[str, Any]
    outcomes: list[SymbolOutcome]
    run_path: str = ""
    interrupted: bool = False
    stop_signal: int = signal.SIGINT  # what interrupted the run, when it was

    @property
    def exit_code(self) -> int:
        """128 + the stopping signal (130 Ctrl-C, 143 SIGTERM); else 0 if all went well."""
        if self.interrupted:
            return 128 + self.stop_signal
        return 0 if all(o.ok for o in self.outcomes) else 1

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "exit_code": self.exit_code}


# --- client side ---------------------------------------------------------------------------


def load_screened(
    symbol: str, offline: bool | None, prices: Mapping[str, pd.DataFrame] | None
) -> pd.DataFrame:
    """``load_history`` through the artefact policy (``data.artefacts.screen``)."""
    screened = screen(symbol, load_history(symbol, offline=offline, prices=prices))
    if "starts_after_artefact" in screened.prices.attrs:
        logger.info(
            "%s: history starts at %s, after a price-level artefact (docs/DATA.md)",
            symbol,
            screened.prices.attrs["starts_after_artefact"],
        )
    return screened.prices


async def fetch_all(
    symbols: Sequence[str],
    offline: bool | None,
    prices: Mapping[str, pd.DataFrame] | None = None,
) -> dict[str, pd.DataFrame | Exception]:
    """Every symbol's screened history (from ``prices`` first, see ``load_history``),
    fetched concurrently; failures come back as exceptions."""
    limit = asyncio.Semaphore(FETCH_CONCURRENCY)

    async def fetch(symbol: str) -> pd.DataFrame | Exception:
        async with limit:
            try:
                return await asyncio.to_thread(load_screened, symbol, offline, prices)
            except (DataUnavailableError, DataQualityError, ValueError) as error:
                return error

    results = await asyncio.gather(*(fetch(symbol) for symbol in symbols))
    return dict(zip(symbols, results, strict=True))


class TrainingRun:
    """One invocation of the trainer over a list of symbols."""

    def __init__(
        self,
        registry: ModelRegistry,
        config: TrainingConfig,
        parallel: int = 1,
        offline: bool | None = None,
        scheduler: str | None = None,
        skip_existing: bool = False,
        resume: bool = False,
        progress: ProgressSink | None = None,
        prices: Mapping[str, pd.DataFrame] | None = None,
    ) -> None:
        self.registry = registry
        self.config = config
        self.parallel = max(1, parallel)
        self.offline = offline
        self.scheduler = scheduler
        self.skip_existing = skip_existing or resume
        self.resume = resume
        self.progress = progress
        self.prices = prices
        self.run_id = f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{os.getpid()}"

    async def run(self, symbols: Sequence[str]) -> RunSummary:
        """Fetch, train and persist every symbol; always writes the run summary."""
        started, started_at = time.perf_counter(), datetime.now(UTC).isoformat(timespec="seconds")
        outcomes: dict[str, SymbolOutcome] = {}
        interrupted, stop_signal = False, signal.SIGINT
        terminated = _cancel_on_sigterm()
        await asyncio.to_thread(self.registry.remove_stale_temp_files)
        await asyncio.to_thread(self.registry.adopt_legacy_layout)
        try:
            jobs = await self._prepare(symbols, outcomes)
            await self._train(jobs, outcomes)
        except (asyncio.CancelledError, KeyboardInterrupt):
            interrupted = True
            stop_signal = signal.SIGTERM if terminated.is_set() else signal.SIGINT
            logger.warning("interrupted: keeping the %d finished models", _count_trained(outcomes))
        finally:
            _restore_sigterm()
        for symbol in symbols:
            outcomes.setdefault(symbol, SymbolOutcome(symbol, "cancelled", "run interrupted"))
        summary = RunSummary(
            run_id=self.run_id,
            started_at=started_at,
            seconds=time.perf_counter() - started,
            parallel=self.parallel,
            scheduler=self.scheduler,
            config=self.config.to_dict(),
            outcomes=[outcomes[s] for s in symbols],
            run_path=str(self.registry.run_path(self.run_id)),
            interrupted=interrupted,
            stop_signal=int(stop_signal),
        )
        self.registry.save_run(self.run_id, summary.to_dict())
        return summary

    async def _prepare(
        self, symbols: Sequence[str], outcomes: dict[str, SymbolOutcome]
    ) -> list[TrainJob]:
        todo = [s for s in symbols if not self._already_done(s)]
        for symbol in set(symbols) - set(todo):
            outcomes[symbol] = SymbolOutcome(symbol, "skipped", "model exists (--skip-existing)")
        histories = await fetch_all(todo, self.offline, self.prices)
        jobs, without_data = [], []
        for symbol, history in histories.items():
            if isinstance(history, DataUnavailableError):
                outcomes[symbol] = SymbolOutcome(symbol, "no_data", str(history))
                without_data.append(symbol)
            elif isinstance(history, Exception):
                outcomes[symbol] = SymbolOutcome(symbol, "bad_data", str(history))
                logger.warning("%s: %s", symbol, history)
            else:
                work_dir = None if self.scheduler else str(self.registry.checkpoint_dir(symbol))
                jobs.append(TrainJob(symbol, history, self.config, work_dir, self.resume))
        if self.progress:
            for symbol in set(symbols) - {job.symbol for job in jobs}:
                self.progress.finished(outcomes[symbol])
        # the longest fits first, so that no long one starts last and runs alone
        jobs.sort(key=lambda job: self._training_rows(job.prices), reverse=True)
        if without_data:
            logger.warning(
                "no data for %d symbols (%s); e.g. %s",
                len(without_data),
                ", ".join(without_data),
                outcomes[without_data[0]].reason,
            )
        return jobs

    def _training_rows(self, prices: pd.DataFrame) -> int:
        """The price rows a fit uses: its cost grows with them."""
        days = self.config.days
        return len(prices) if days is None else min(len(prices), days)

    def _already_done(self, symbol: str) -> bool:
        """Skipped: it has a model and, with ``--resume``, no unfinished fit (a retrain of a
        symbol that already had a model, interrupted at any moment before its new version
        was committed, is resumed)."""
        if not (self.skip_existing and self.registry.has_model(symbol)):
            return False
        return not (self.resume and has_unfinished_fit(self.registry.checkpoint_dir(symbol)))

    async def _train(self, jobs: list[TrainJob], outcomes: dict[str, SymbolOutcome]) -> None:
        if not jobs:
            return
        if self.scheduler:
            from ml.state_space.execution.dask import run_on_dask

            for job in jobs:
                self._notify_queued(job.symbol)
            async for job, result, seconds in run_on_dask(self.scheduler, jobs, run_job):
                await self._record(job.symbol, result, seconds, outcomes)
            return
        await self._train_locally(jobs, outcomes)

    async def _train_locally(
        self, jobs: list[TrainJob], outcomes: dict[str, SymbolOutcome]
    ) -> None:
        context = multiprocessing.get_context("spawn")
        manager = SyncManager(ctx=context)
        manager.start(init_helper_process)
        events = manager.Queue()
        pump = asyncio.create_task(self._pump_progress(events))
        try:
            with process_pool(self.parallel, len(jobs), events) as pool:
                await self._run_jobs(pool, jobs, outcomes)
        finally:
            pump.cancel()
            manager.shutdown()

    async def _run_jobs(
        self, pool: Executor, jobs: list[TrainJob], outcomes: dict[str, SymbolOutcome]
    ) -> None:
        """Run every job in the pool; an interruption first lets saves under way finish.

        A task group, unlike ``gather``, waits for all its tasks when cancelled, so the
        run summary is written only after every model on disk has its outcome.
        """
        async with asyncio.TaskGroup() as group:
            for job in jobs:
                group.create_task(self._run_in_pool(pool, job, outcomes))

    async def _run_in_pool(
        self, pool: Executor, job: TrainJob, outcomes: dict[str, SymbolOutcome]
    ) -> None:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(pool, run_job, job)
        self._notify_queued(job.symbol)
        started = time.perf_counter()
        try:
            result: TrainingResult | Exception = await future
        except asyncio.CancelledError:
            raise
        except Exception as error:  # one symbol's failure must not stop the others
            result = error
        await self._record(job.symbol, result, time.perf_counter() - started, outcomes)

    async def _record(
        self,
        symbol: str,
        result: TrainingResult | BaseException,
        seconds: float,
        outcomes: dict[str, SymbolOutcome],
    ) -> None:
        """Persist a finished model (atomically, off the loop) and record its outcome.

        A save already under way when the run is interrupted is finished and recorded
        before the interruption propagates: a model on disk is always in the summary.
        """
        if isinstance(result, BaseException):
            self._finish(_failure(symbol, result, seconds), outcomes)
            return
        saving = asyncio.ensure_future(
            asyncio.to_thread(
                self.registry.save,
                result.symbol,
                result.model_bytes,
                result.metadata,
                result.metrics,
            )
        )
        try:
            await asyncio.shield(saving)
        except asyncio.CancelledError:
            await saving
            self._committed(result, outcomes)
            raise
        except OSError as error:  # a full disk fails this symbol, not the run
            self._finish(_failure(symbol, error, seconds), outcomes)
            return
        self._committed(result, outcomes)

    def _committed(self, result: TrainingResult, outcomes: dict[str, SymbolOutcome]) -> None:
        """Record a saved model; its fit's scratch state, no longer unfinished, goes."""
        if not self.scheduler:
            shutil.rmtree(self.registry.checkpoint_dir(result.symbol), ignore_errors=True)
        self._finish(outcome_from_result(result), outcomes)

    def _finish(self, outcome: SymbolOutcome, outcomes: dict[str, SymbolOutcome]) -> None:
        outcomes[outcome.symbol] = outcome
        if self.progress:
            self.progress.finished(outcome)

    def _notify_queued(self, symbol: str) -> None:
        if self.progress:
            self.progress.queued(symbol)

    async def _pump_progress(self, events: Any) -> None:
        while True:
            try:
                symbol, record = await asyncio.to_thread(events.get, True, 0.2)
            except queue.Empty:
                continue
            except (EOFError, BrokenPipeError, ConnectionError):
                return
            if self.progress:
                self.progress.epoch(symbol, record)


def outcome_from_result(result: TrainingResult) -> SymbolOutcome:
    """A trained symbol's outcome; ``seconds`` is its own training time, not queueing."""
    metrics = result.metrics
    best = metrics.get("best_epoch")
    val_loss = next((e["val_loss"] for e in metrics["epochs"] if e["epoch"] == best), None)
    return SymbolOutcome(
        symbol=result.symbol,
        status="trained",
        reason=metrics["stop_reason"],
        seconds=metrics["training_seconds"],
        best_epoch=best,
        val_loss=val_loss,
        test_skill={h: m["skill_vs_random_walk"] for h, m in metrics["test"].items()},
        version=result.metadata["version"],
    )


def _failure(symbol: str, error: BaseException, seconds: float) -> SymbolOutcome:
    status = "bad_data" if isinstance(error, DataQualityError) else "failed"
    logger.error("%s failed: %s: %s", symbol, type(error).__name__, error)
    return SymbolOutcome(symbol, status, f"{type(error).__name__}: {error}", seconds)


def _cancel_on_sigterm() -> threading.Event:
    """Make SIGTERM (``timeout``, systemd, Kubernetes) stop the run like Ctrl-C: the
    running task is cancelled, workers are stopped, finished models and the summary are
    kept. The returned event tells whether SIGTERM was the cause."""
    terminated = threading.Event()
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def on_sigterm() -> None:
        terminated.set()
        if task is not None:
            task.cancel()

    try:
        loop.add_signal_handler(signal.SIGTERM, on_sigterm)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, Windows
        logger.debug("SIGTERM handler not installed")
    return terminated


def _restore_sigterm() -> None:
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)


def _count_trained(outcomes: dict[str, SymbolOutcome]) -> int:
    return sum(o.status == "trained" for o in outcomes.values())
