"""Run jobs (training runs, backtest tasks) on an existing Dask distributed cluster.

Workers receive the price frame inside the job and return the results (trained
artefacts as bytes, forecast tables); the client persists them, so no shared
filesystem is needed.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

logger = logging.getLogger(__name__)


async def run_on_dask(
    address: str, jobs: list[Any], run_job: Callable[[Any], Any]
) -> AsyncIterator[tuple[Any, Any, float]]:
    """Yield ``(job, result or exception, seconds)`` as each job finishes on the cluster.

    Each job names itself with a ``key`` attribute (made unique per submission here).
    """
    try:
        from distributed import Client, as_completed
    except ImportError as error:
        raise RuntimeError("--scheduler needs the Dask extra: pip install -e '.[dask]'") from error

    started = time.perf_counter()
    async with Client(address, asynchronous=True) as client:
        logger.info("submitting %d jobs to Dask at %s", len(jobs), address)
        futures = {
            client.submit(run_job, job, key=f"{job.key}-{uuid.uuid4().hex[:8]}"): job
            for job in jobs
        }
        async for future in as_completed(futures):
            job = futures[future]
            try:
                result = await future
            except Exception as error:  # reported per job, never fatal to the run
                result = error
            yield job, result, time.perf_counter() - started
