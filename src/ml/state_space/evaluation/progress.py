"""Where a backtest stands: tasks done / total, which are running, and the time to go.

The time to go comes from the finished tasks' own durations, per kind of task (a global
fit, one model's per-symbol fit): each unfinished task is expected to take its kind's
mean, less what a running one has already spent; global fits run one at a time, the
others share the workers. Unknown (None) while a kind still waiting has no finished task.
Every event rewrites ``progress.json`` (:class:`RunStore`) for scripts and dashboards.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from ml.state_space.evaluation.run_store import RunStore

logger = logging.getLogger(__name__)


class PlannedTask(Protocol):
    key: str
    kind: tuple[str, str]


@dataclass
class Running:
    """A task a worker has started, and its network's latest epoch record."""

    since: float
    record: dict[str, Any]


class BacktestProgress:
    """Counts a backtest's task events; ``on_change`` (a display) is told after each."""

    def __init__(
        self,
        store: RunStore | None = None,
        workers: int = 1,
        on_change: Callable[[BacktestProgress], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.workers, self.on_change, self.clock = store, workers, on_change, clock
        self.kinds: dict[str, tuple[str, str]] = {}
        self.resumed: set[str] = set()
        self.done: dict[str, float] = {}  # key -> seconds, this run's
        self.failed: dict[str, str] = {}
        self.running: dict[str, Running] = {}
        self.last: tuple[str, float, str | None] | None = None  # the latest finished task
        self.last_epoch: tuple[str, dict[str, Any]] | None = None  # the latest epoch record
        self.started_at = clock()
        self.state = "running"
        self._written = float("-inf")  # when progress.json was last written

    def planned(self, tasks: Iterable[PlannedTask], resumed: set[str]) -> None:
        """The run's tasks (its finished ones, ``resumed``, included)."""
        self.kinds = {task.key: task.kind for task in tasks}
        self.resumed = resumed & self.kinds.keys()
        self._changed()

    def epoch(self, key: str, record: dict[str, Any]) -> None:
        """A worker's record: ``{"epoch": 0}`` as a task starts, then each epoch's (a
        record that arrives after its task's end is stale)."""
        if key in self.done or key in self.failed:
            return
        running = self.running.setdefault(key, Running(self.clock(), {}))
        running.record = record
        self.last_epoch = (key, record)
        self._changed()

    def finished(self, key: str, seconds: float, error: str | None = None) -> None:
        self.running.pop(key, None)
        self.last = (key, seconds, error)
        if error is None:
            self.done[key] = seconds
        else:
            self.failed[key] = error
        self._changed()

    def close(self) -> None:
        self.state = "finished"
        self.running.clear()
        self._changed()

    @property
    def total(self) -> int:
        return len(self.kinds)

    @property
    def completed(self) -> int:
        """Tasks with rows on disk: resumed or finished in this run."""
        return len(self.resumed) + len(self.done)

    def eta_seconds(self) -> float | None:
        """Seconds to go, or None while a waiting kind of task has no duration yet."""
        means: dict[tuple[str, str], list[float]] = {}
        for key, seconds in self.done.items():
            means.setdefault(self.kinds[key], []).append(seconds)
        ended = self.resumed | self.done.keys() | self.failed.keys()
        now = self.clock()
        serial = shared = 0.0
        for key, kind in self.kinds.items():
            if key in ended:
                continue
            if kind not in means:
                return None
            expected = sum(means[kind]) / len(means[kind])
            if key in self.running:
                expected = max(expected - (now - self.running[key].since), 0.0)
            if kind[0] == "global":
                serial += expected
            else:
                shared += expected
        return serial + shared / max(self.workers, 1)

    def snapshot(self) -> dict[str, Any]:
        """The state ``progress.json`` holds."""
        now = self.clock()
        return {
            "state": self.state,
            "total": self.total,
            "done": self.completed,
            "resumed": len(self.resumed),
            "failed": sorted(self.failed),
            "running": {  # with the network's latest epoch record, if it has one
                key: {
                    "seconds": round(now - r.since, 1),
                    "epoch": r.record if r.record.get("epoch") else None,
                }
                for key, r in sorted(self.running.items())
            },
            "elapsed_seconds": round(now - self.started_at, 1),
            "eta_seconds": _rounded(self.eta_seconds()),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }

    def _changed(self) -> None:
        now = self.clock()
        if self.store is not None and (self.state == "finished" or now - self._written >= 1.0):
            self.store.write_progress(self.snapshot())  # at most once a second: many
            self._written = now  # baseline tasks end within milliseconds
        if self.on_change is not None:
            self.on_change(self)


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 1)
