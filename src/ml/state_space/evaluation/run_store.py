"""A backtest's finished tasks on disk, so that a killed run resumes where it stopped.

Layout under the run's output directory::

    run.json            the run's settings and a fingerprint of its data (what --resume checks)
    tasks/<key>.parquet one finished task's forecast rows, written atomically when it ends
    progress.json       tasks done / total, which are running, the time to go (for scripts)

A kill at any moment leaves each task file whole or absent (:func:`atomic_write`), so
``--resume`` runs exactly the tasks without a file. The forecasts are always rebuilt from
the task files in key order, so a resumed run's table is the uninterrupted run's.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from ml.state_space.atomic import atomic_write, atomic_write_json

logger = logging.getLogger(__name__)

RUN_FILE, PROGRESS_FILE, TASKS_DIR = "run.json", "progress.json", "tasks"
# what a finished run writes from its task files (evaluation.report, the CLI's plots)
STALE_FILES = (
    PROGRESS_FILE,
    "forecasts.parquet",
    "summary.json",
    "report.md",
    "skill_by_year.png",
    "reliability.png",
)


class ResumeMismatch(ValueError):
    """``--resume`` of a run whose settings or data differ from this command's."""


def data_fingerprint(histories: Mapping[str, pd.DataFrame]) -> dict[str, str]:
    """Per symbol, a SHA-256 of its rows (dates, columns and values): equal only for the
    same prices."""
    prints = {}
    for symbol, frame in sorted(histories.items()):
        digest = hashlib.sha256(",".join(map(str, frame.columns)).encode())
        digest.update(pd.util.hash_pandas_object(frame, index=True).to_numpy().tobytes())
        prints[symbol] = digest.hexdigest()[:16]
    return prints


def differences(before: Any, after: Any, path: str = "") -> list[str]:
    """What differs between two JSON-like values, one ``path: old -> new`` line each (a
    data fingerprint's symbols summarised)."""
    if isinstance(before, dict) and isinstance(after, dict):
        if path.startswith("data."):
            changed = sorted(s for s in before.keys() & after.keys() if before[s] != after[s])
            facts = [
                ("prices differ for", changed),
                ("in the run, not now:", sorted(before.keys() - after.keys())),
                ("new:", sorted(after.keys() - before.keys())),
            ]
            return [f"{path}: {what} {_few(names)}" for what, names in facts if names]
        out = []
        for key in sorted(before.keys() | after.keys(), key=str):
            name = f"{path}.{key}" if path else str(key)
            out += differences(before.get(key, "(unset)"), after.get(key, "(unset)"), name)
        return out
    return [] if before == after else [f"{path}: {before!r} -> {after!r}"]


def _few(items: list[str], shown: int = 5) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


class RunStore:
    """The task files, run description and progress of one backtest output directory."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.tasks = self.out / TASKS_DIR

    def start(self, manifest: dict[str, Any], resume: bool) -> set[str]:
        """Begin a run described by ``manifest`` (settings, data fingerprint); returns the
        keys of the tasks already finished. With ``resume`` an earlier run's finished tasks
        are kept when its manifest equals this one (``ResumeMismatch`` saying what differs
        otherwise); without it an unfinished earlier run is refused (``ResumeMismatch``) and
        a finished one's task files are replaced."""
        manifest = json.loads(json.dumps(manifest, default=str))  # as it reads back
        for partial in self.tasks.glob(".*.tmp"):  # a write a kill interrupted
            partial.unlink()
        earlier = self.manifest()
        done = self.finished()
        if earlier is not None and resume:
            changed = differences(earlier, manifest)
            if changed:
                raise ResumeMismatch(
                    f"--resume: {self.out} holds a run with other settings or data, so its "
                    f"forecasts cannot be continued: {'; '.join(changed)}. Run with the "
                    "original settings and data, or choose another --out"
                )
            logger.info("resuming %s: %d finished tasks kept", self.out, len(done))
            return done
        if done and not resume and not self.is_complete():
            raise ResumeMismatch(
                f"{self.out} holds an unfinished backtest ({len(done)} tasks done): add "
                "--resume to continue it, or choose another --out (or delete it) to start afresh"
            )
        for path in [*self.tasks.glob("*.parquet"), *(self.out / n for n in STALE_FILES)]:
            path.unlink(missing_ok=True)  # an earlier run's: they would mix with this one's
        atomic_write_json(self.out / RUN_FILE, manifest)
        return set()

    def manifest(self) -> dict[str, Any] | None:
        path = self.out / RUN_FILE
        return json.loads(path.read_text()) if path.exists() else None

    def finished(self) -> set[str]:
        """The keys of the tasks whose rows are on disk."""
        return {path.stem for path in self.tasks.glob("*.parquet")}

    def save(self, key: str, rows: pd.DataFrame) -> Path:
        """One finished task's rows, whole or not at all."""
        return atomic_write(self.tasks / f"{key}.parquet", lambda tmp: rows.to_parquet(tmp))

    def rows(self, keys: list[str] | None = None) -> list[pd.DataFrame]:
        """The finished tasks' rows, in key order (the order never depends on which run
        finished which task)."""
        names = sorted(keys if keys is not None else self.finished())
        return [pd.read_parquet(self.tasks / f"{key}.parquet") for key in names]

    def write_progress(self, state: dict[str, Any]) -> None:
        atomic_write_json(self.out / PROGRESS_FILE, state)

    def progress(self) -> dict[str, Any] | None:
        path = self.out / PROGRESS_FILE
        return json.loads(path.read_text()) if path.exists() else None

    def unfinished(self) -> str | None:
        """Why the run here has no final forecasts yet (None when it finished)."""
        state = self.progress()
        if state is None or state.get("state") == "finished":
            return None
        return (
            f"{self.out} is an unfinished backtest ({len(self.finished())} of {state.get('total')} "
            f"tasks done, {self.out / PROGRESS_FILE}): finish it with its backtest.py command "
            "and --resume"
        )

    def is_complete(self) -> bool:
        """Whether the run's last progress record says it finished (its report written)."""
        state = self.progress()
        return bool(state and state.get("state") == "finished")
