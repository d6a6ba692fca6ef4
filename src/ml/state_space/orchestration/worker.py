"""The worker side of a training run: what a spawned process or a Dask worker executes.

Kept free of module-level TensorFlow imports: a spawned worker unpickles its
initializer from here, so TensorFlow loads once, inside :func:`init_worker`, with
its thread caps applied and its C++ start-up banner silenced.
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from ml.state_space.training.config import TrainingConfig
    from ml.state_space.training.trainer import TrainingResult

_progress_queue: Any = None


@dataclass
class TrainJob:
    """One symbol's training task; picklable, so it can cross process or network."""

    symbol: str
    prices: pd.DataFrame
    config: TrainingConfig
    work_dir: str | None
    resume: bool = False

    @property
    def key(self) -> str:
        return f"train-{self.symbol}"


def ignore_sigint() -> None:
    """Ctrl-C is the parent's to handle: it stops workers itself, after recording the run."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null (TensorFlow's C++ logging ignores ``sys.stderr``)."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


def exit_with_parent(poll_seconds: float = 1.0) -> None:
    """End this worker when its parent dies, however it died (even ``kill -9``): a
    daemon thread watches the parent pid. No orphan keeps its ~1 GB after the run."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def init_helper_process() -> None:
    """Initializer of the run's helper processes (the progress queue's manager): the
    parent handles Ctrl-C, and the helper ends with the parent."""
    ignore_sigint()
    exit_with_parent()


def init_worker(threads: int, progress_queue: Any) -> None:
    """Runs once in each spawned worker: cap TensorFlow's (and OpenMP's) threads, remember
    the queue."""
    global _progress_queue
    init_helper_process()
    _progress_queue = progress_queue
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # no INFO lines from TensorFlow's C++
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # LightGBM's share of the cores
    with native_stderr_silenced():
        import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def _report_epoch(symbol: str, record: dict[str, Any]) -> None:
    if _progress_queue is not None:
        _progress_queue.put((symbol, record))


def run_job(job: TrainJob) -> TrainingResult:
    """Train one symbol; the unit of work for both the process pool and Dask.

    Progress records go to the pool's queue: ``{"epoch": 0}`` when the job starts,
    then one record per finished epoch. Without a ``work_dir`` (Dask) scratch state
    lives in a temporary directory on the worker.
    """
    from ml.state_space.training.loop import reset_work_dir
    from ml.state_space.training.trainer import train_symbol

    _report_epoch(job.symbol, {"epoch": 0})
    if job.work_dir is not None:
        reset_work_dir(Path(job.work_dir), job.symbol, job.resume)
        return train_symbol(job.symbol, job.prices, job.config, job.work_dir, _report_epoch)
    with tempfile.TemporaryDirectory(prefix=f"train-{job.symbol}-") as work_dir:
        return train_symbol(job.symbol, job.prices, job.config, work_dir, _report_epoch)
