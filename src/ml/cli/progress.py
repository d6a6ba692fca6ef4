"""Progress sinks for a training run: a live terminal display, or plain log lines."""

from __future__ import annotations

import logging
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ml.state_space.evaluation.progress import BacktestProgress
from ml.state_space.evaluation.report import SUMMARY_COLUMNS, format_cell
from ml.state_space.orchestration.run import RunSummary, SymbolOutcome

logger = logging.getLogger(__name__)


class LogProgress:
    """One log line per event; for CI logs, pipes and files."""

    def __init__(self, total: int, epochs: int) -> None:
        self.total, self.epochs, self.done = total, epochs, 0

    def queued(self, symbol: str) -> None:
        logger.debug("%s queued", symbol)

    def epoch(self, symbol: str, record: dict[str, Any]) -> None:
        if record["epoch"] == 0:
            logger.info("%s started", symbol)
            return
        logger.info(
            "%s epoch %d/%d loss=%.4f val_loss=%.4f lr=%.2g (%.1fs)",
            symbol,
            record["epoch"],
            self.epochs,
            record.get("loss", float("nan")),
            record.get("val_loss", float("nan")),
            record.get("learning_rate", float("nan")),
            record.get("seconds", 0.0),
        )

    def finished(self, outcome: SymbolOutcome) -> None:
        self.done += 1
        quiet = outcome.status in ("no_data", "skipped")  # summarised once by the run
        logger.log(
            logging.DEBUG if quiet else logging.INFO,
            "[%d/%d] %s %s %s",
            self.done,
            self.total,
            outcome.symbol,
            outcome.status,
            outcome.reason,
        )

    def __enter__(self) -> LogProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class LiveProgress:
    """A terminal display: one line per running symbol and an overall bar with ETA."""

    def __init__(self, total: int, epochs: int, console: Console | None = None) -> None:
        self.epochs = epochs
        self.console = console or Console()
        self.overall = Progress(
            TextColumn("[bold]symbols"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
        )
        self.task = self.overall.add_task("symbols", total=total)
        self.running: dict[str, dict[str, Any]] = {}
        self.live = Live(console=self.console, refresh_per_second=2, get_renderable=self._render)

    def queued(self, symbol: str) -> None:
        return None

    def epoch(self, symbol: str, record: dict[str, Any]) -> None:
        state = self.running.setdefault(symbol, {"since": time.monotonic()})
        state.update(record)

    def finished(self, outcome: SymbolOutcome) -> None:
        self.running.pop(outcome.symbol, None)
        self.overall.advance(self.task)
        if outcome.status in ("no_data", "skipped"):  # listed once, in the summary
            return
        style = "green" if outcome.status == "trained" else "red"
        self.console.print(
            f"[{style}]{outcome.status:>9}[/] {outcome.symbol:<8} {outcome.seconds:7.1f}s "
            f"{outcome.reason[:100]}"
        )

    def _render(self) -> Group:
        table = Table.grid(padding=(0, 2))
        for symbol, state in sorted(self.running.items()):
            epoch = state.get("epoch", 0)
            status = "preparing" if epoch == 0 else f"epoch {epoch}/{self.epochs}"
            val_loss = state.get("val_loss")
            table.add_row(
                symbol,
                status,
                f"val_loss {val_loss:.4f}" if val_loss is not None else "",
                f"{time.monotonic() - state['since']:.0f}s",
            )
        return Group(table, self.overall)

    def __enter__(self) -> LiveProgress:
        self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.live.stop()


def make_progress(total: int, epochs: int) -> LiveProgress | LogProgress:
    """A live display on a terminal, log lines otherwise."""
    console = Console(stderr=True)
    if console.is_terminal:
        return LiveProgress(total, epochs, console)
    return LogProgress(total, epochs)


def print_summary(summary: RunSummary, horizons: tuple[int, ...]) -> None:
    """The end-of-run table: status, best epoch, val loss, test skill per horizon, seconds."""
    table = Table(
        title=f"run {summary.run_id} ({summary.seconds:.0f}s, parallel {summary.parallel})"
    )
    for column in ("symbol", "status", "best epoch", "val loss"):
        table.add_column(column)
    for horizon in horizons:
        table.add_column(f"skill h{horizon}", justify="right")
    table.add_column("seconds", justify="right")
    table.add_column("note", overflow="ellipsis", no_wrap=True, max_width=80)
    without_data = [o for o in summary.outcomes if o.status == "no_data"]
    for outcome in summary.outcomes:
        if outcome.status == "no_data":
            continue
        skills = [outcome.test_skill.get(f"h{h}") for h in horizons]
        table.add_row(
            outcome.symbol,
            outcome.status,
            str(outcome.best_epoch or ""),
            f"{outcome.val_loss:.4f}" if outcome.val_loss is not None else "",
            *(f"{s:+.3f}" if s is not None else "" for s in skills),
            f"{outcome.seconds:.0f}",
            outcome.reason.replace("_", " "),
        )
    console = report_console()
    console.print(table)
    if without_data:
        console.print(
            f"no data for {len(without_data)} symbols "
            f"({', '.join(o.symbol for o in without_data)}): {without_data[0].reason}"
        )
    console.print(f"full reasons: {summary.run_path}")
    console.print(
        "skill = 1 - MAE(model) / MAE(random walk) on the held-out test segment; > 0 beats "
        "predicting no change."
    )


def report_console() -> Console:
    """A console for tables: the terminal's width, or 200 columns in logs and pipes."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


class TaskProgress:
    """A backtest's display, told of each change of its :class:`BacktestProgress`: on a
    terminal the running tasks (epoch, seconds), a bar of tasks done and the time to go;
    elsewhere a log line per finished task with the same facts."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console
        self.state: BacktestProgress | None = None
        self.reported: str | None = None  # the finished task last reported
        self.epoch_reported: Any = None  # the epoch record last logged
        self.live = (
            Live(console=console, refresh_per_second=2, get_renderable=self._render)
            if console is not None
            else None
        )

    def __call__(self, progress: BacktestProgress) -> None:
        self.state = progress
        if self.console is None and progress.last_epoch is not self.epoch_reported:
            self._log_epoch(*progress.last_epoch)
        if progress.last is None or progress.last[0] == self.reported:
            return
        key, seconds, error = progress.last
        self.reported = key
        if self.console is not None:
            if error is not None:
                self.console.print(f"[red]failed[/] {key}: {error[:120]}")
            return
        logger.log(
            logging.WARNING if error else logging.INFO,
            "[%d/%d] %s %s (%.1fs); %d running, %s to go",
            progress.completed,
            progress.total,
            key,
            error or "ok",
            seconds,
            len(progress.running),
            format_duration(progress.eta_seconds()),
        )

    def _log_epoch(self, key: str, record: dict[str, Any]) -> None:
        self.epoch_reported = self.state.last_epoch if self.state else None
        if record.get("epoch", 0) == 0:
            return
        logger.info(
            "%s epoch %d loss=%.4f val_loss=%.4f lr=%.2g (%.1fs)",
            key,
            record["epoch"],
            record.get("loss", float("nan")),
            record.get("val_loss", float("nan")),
            record.get("learning_rate", float("nan")),
            record.get("seconds", 0.0),
        )

    def _render(self) -> Group:
        progress = self.state
        if progress is None:
            return Group("planning the backtest")
        table = Table.grid(padding=(0, 2))
        now = progress.clock()
        for key, running in sorted(progress.running.items()):
            record = running.record
            epoch = record.get("epoch", 0)
            table.add_row(
                key,
                "preparing" if epoch == 0 else f"epoch {epoch}",
                f"val_loss {record['val_loss']:.4f}" if "val_loss" in record else "",
                f"{now - running.since:.0f}s",
            )
        done = progress.completed + len(progress.failed)
        width = 30
        filled = int(width * done / max(progress.total, 1))
        bar = "\u2588" * filled + "\u2591" * (width - filled)
        line = (
            f"[bold]backtest tasks[/] {bar} {done}/{progress.total}"
            f"{f' ({len(progress.resumed)} resumed)' if progress.resumed else ''}"
            f"{f' [red]{len(progress.failed)} failed[/]' if progress.failed else ''}"
            f"  {format_duration(progress.eta_seconds())} to go"
        )
        return Group(table, line)

    def __enter__(self) -> TaskProgress:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.stop()


def format_duration(seconds: float | None) -> str:
    """``1 h 05 min``, ``12 min``, ``40 s``; ``?`` when unknown (no task of a kind done)."""
    if seconds is None:
        return "?"
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{minutes} min"


def make_task_progress() -> TaskProgress:
    """A live display on a terminal, log lines otherwise."""
    console = Console(stderr=True)
    return TaskProgress(console if console.is_terminal else None)


def print_backtest_summary(summary: Any, seconds: float, failures: int) -> None:
    """One table per horizon: every model next to the baselines on the same windows."""
    console = report_console()
    for horizon, rows in summary.groupby("horizon", sort=True):
        table = Table(title=f"h = {horizon} trading days")
        for title in SUMMARY_COLUMNS.values():
            table.add_column(title, justify="left" if title == "model" else "right")
        for _, row in rows.iterrows():
            table.add_row(*(format_cell(name, row[name]) for name in SUMMARY_COLUMNS))
        console.print(table)
    console.print(
        f"{seconds:.0f} s, {failures} failed task(s). Skill = 1 - loss(model)/loss(random walk) "
        "on the same windows (> 0 beats it); DM better/worse = symbols significantly better/"
        "worse at 5% (Diebold-Mariano)."
    )
