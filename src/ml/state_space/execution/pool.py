"""Worker processes for any job: how many, with how many threads, and their set-up.

The training run and the backtest both spawn their workers through here. Kept free of
module-level TensorFlow imports: a spawned worker unpickles its initializer from here,
so TensorFlow loads once, inside :func:`init_worker`, with its thread caps applied and
its C++ start-up banner silenced.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

logger = logging.getLogger(__name__)

_progress_queue: Any = None


def local_workers(parallel: int, cores: int | None = None) -> int:
    """Processes to run locally: at most one per core.

    Measured on a 2-core machine (docs/PERFORMANCE.md): 2 workers train 6 symbols 1.5x
    faster than 1, while 4 and 10 are slower than 2 and use 1.2 GB more memory each.
    """
    return max(1, min(parallel, cores or os.cpu_count() or 1))


def worker_threads(workers: int, cores: int | None = None) -> int:
    """TensorFlow threads per worker so that ``workers`` processes share the cores."""
    return max(1, (cores or os.cpu_count() or 1) // max(1, workers))


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


def report_progress(key: str, record: dict[str, Any]) -> None:
    """Send a progress record to the parent (no-op without a queue, e.g. on Dask)."""
    if _progress_queue is not None:
        _progress_queue.put((key, record))


@contextlib.contextmanager
def process_pool(
    parallel: int, jobs: int, progress_queue: Any = None
) -> Iterator[ProcessPoolExecutor]:
    """Spawned workers for ``jobs`` jobs (TensorFlow is not fork-safe): at most one per
    core and per job, each with its share of the threads and :func:`init_worker`. A
    cancelled caller (Ctrl-C) stops the workers at once; a fit's saved state lets
    ``--resume`` continue it. The one pool of the training run and the backtest."""
    workers = min(local_workers(parallel), max(jobs, 1))
    if workers < min(parallel, jobs):
        logger.warning(
            "--parallel %d on %d cores: running %d worker processes (more would only "
            "compete for the cores and cost ~1.2 GB each)",
            parallel,
            os.cpu_count(),
            workers,
        )
    pool = ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=init_worker,
        initargs=(worker_threads(workers), progress_queue),
    )
    try:
        yield pool
    except asyncio.CancelledError:
        _terminate_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _terminate_workers(pool: ProcessPoolExecutor) -> None:
    terminate = getattr(pool, "terminate_workers", None)  # Python 3.14+
    if terminate is not None:
        terminate()
        return
    for process in list(getattr(pool, "_processes", {}).values()):
        process.terminate()
