"""The backtest's display in logs: each finished task with the count and time to go, and
each epoch of a network's fit."""

from __future__ import annotations

import logging

from ml.cli.progress import TaskProgress, format_duration
from ml.state_space.evaluation.progress import BacktestProgress


class Task:
    def __init__(self, key: str, kind: tuple[str, str]) -> None:
        self.key, self.kind = key, kind


def test_log_lines_tell_epochs_finished_tasks_and_the_time_to_go(caplog):
    now = [0.0]
    progress = BacktestProgress(workers=1, on_change=TaskProgress(None), clock=lambda: now[0])
    tasks = [Task("fold-2019", ("global", "mamba")), Task("fold-2020", ("global", "mamba"))]
    with caplog.at_level(logging.INFO):
        progress.planned(tasks, set())
        progress.epoch("fold-2019", {"epoch": 0})
        progress.epoch("fold-2019", {"epoch": 3, "loss": 0.5, "val_loss": 0.6, "seconds": 9.0})
        now[0] = 600.0
        progress.finished("fold-2019", 600.0)
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "fold-2019 epoch 3 loss=0.5000 val_loss=0.6000 lr=nan (9.0s)",
        "[1/2] fold-2019 ok (600.0s); 0 running, 10 min to go",
    ]


def test_durations_read_as_people_write_them():
    assert [format_duration(s) for s in (None, 42.0, 720.0, 3900.0)] == [
        "?",
        "42 s",
        "12 min",
        "1 h 05 min",
    ]
