"""The training run's unit of work: one symbol's job, run in a spawned process or on Dask."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ml.state_space.execution.pool import report_progress

if TYPE_CHECKING:
    import pandas as pd

    from ml.state_space.models.config import TrainingConfig
    from ml.state_space.training.trainer import TrainingResult


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


def run_job(job: TrainJob) -> TrainingResult:
    """Train one symbol; the unit of work for both the process pool and Dask.

    Progress records go to the pool's queue: ``{"epoch": 0}`` when the job starts,
    then one record per finished epoch. Without a ``work_dir`` (Dask) scratch state
    lives in a temporary directory on the worker.
    """
    from ml.state_space.engine.loop import reset_work_dir
    from ml.state_space.training.trainer import train_symbol

    report_progress(job.symbol, {"epoch": 0})
    if job.work_dir is not None:
        reset_work_dir(Path(job.work_dir), job.symbol, job.resume)
        return train_symbol(job.symbol, job.prices, job.config, job.work_dir, report_progress)
    with tempfile.TemporaryDirectory(prefix=f"train-{job.symbol}-") as work_dir:
        return train_symbol(job.symbol, job.prices, job.config, work_dir, report_progress)
