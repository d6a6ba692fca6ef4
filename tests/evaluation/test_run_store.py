"""A backtest's run directory: resume refusals, task files, progress and its time to go."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ml.state_space.evaluation.progress import BacktestProgress
from ml.state_space.evaluation.run_store import (
    ResumeMismatch,
    RunStore,
    data_fingerprint,
    differences,
)

PRICES = pd.DataFrame(
    {"close": [1.0, 2.0, 3.0]}, index=pd.date_range("2020-01-01", periods=3, name="date")
)


def manifest(**settings) -> dict:
    return {
        "settings": {"years": [2019, 2020], "training": {"epochs": 30}, **settings},
        "data": {"symbols": data_fingerprint({"AAPL": PRICES, "KO": PRICES * 2})},
    }


def rows(value: float) -> pd.DataFrame:
    return pd.DataFrame({"model": ["rw"], "q0.5": [value]})


def test_a_resumed_run_keeps_its_finished_tasks_and_reads_them_in_key_order(tmp_path):
    store = RunStore(tmp_path / "run")
    assert store.start(manifest(), resume=False) == set()
    store.save("b-task", rows(2.0))
    store.save("a-task", rows(1.0))
    (store.tasks / ".c-task.parquet.x.tmp").write_bytes(b"half")  # a write killed midway

    again = RunStore(tmp_path / "run")
    assert again.start(manifest(), resume=True) == {"a-task", "b-task"}
    assert [frame["q0.5"].item() for frame in again.rows()] == [1.0, 2.0]
    assert not list(again.tasks.glob("*.tmp"))


def test_resuming_with_other_settings_or_data_is_refused_with_what_differs(tmp_path):
    store = RunStore(tmp_path / "run")
    store.start(manifest(), resume=False)
    store.save("a-task", rows(1.0))
    with pytest.raises(ResumeMismatch, match=r"settings.training.epochs: 30 -> 5"):
        store.start(manifest(training={"epochs": 5}), resume=True)
    changed = manifest()
    changed["data"]["symbols"] = data_fingerprint({"AAPL": PRICES.iloc[:2], "MSFT": PRICES})
    with pytest.raises(ResumeMismatch) as refused:
        store.start(changed, resume=True)
    message = str(refused.value)
    assert "data.symbols: prices differ for AAPL" in message
    assert "data.symbols: in the run, not now: KO" in message
    assert "data.symbols: new: MSFT" in message
    assert store.finished() == {"a-task"}  # a refusal loses nothing


def test_an_unfinished_run_is_never_overwritten_without_resume(tmp_path):
    store = RunStore(tmp_path / "run")
    store.start(manifest(), resume=False)
    store.save("a-task", rows(1.0))
    with pytest.raises(ResumeMismatch, match=r"unfinished backtest \(1 tasks done\): add --resume"):
        store.start(manifest(), resume=False)
    progress = BacktestProgress(store)
    progress.planned([], set())
    progress.close()  # the run ended: a new one replaces its files
    assert store.start(manifest(training={"epochs": 5}), resume=False) == set()
    assert store.finished() == set()
    assert json.loads((store.out / "run.json").read_text())["settings"]["training"] == {
        "epochs": 5
    }


def test_differences_name_each_changed_field():
    assert differences({"a": 1, "b": {"c": [1, 2]}}, {"a": 1, "b": {"c": [1, 3]}}) == [
        "b.c: [1, 2] -> [1, 3]"
    ]
    assert differences({"a": 1}, {"a": 1, "z": None}) == ["z: '(unset)' -> None"]


class Task:
    def __init__(self, key: str, kind: tuple[str, str]) -> None:
        self.key, self.kind = key, kind


def test_the_time_to_go_comes_from_each_kind_of_tasks_durations(tmp_path):
    now = [0.0]
    store = RunStore(tmp_path)
    progress = BacktestProgress(store, workers=2, clock=lambda: now[0])
    tasks = [Task(f"g{i}", ("global", "mamba")) for i in range(3)]
    tasks += [Task(f"s{i}", ("single", "garch")) for i in range(5)]
    progress.planned(tasks, resumed={"g0"})
    progress.epoch("g1", {"epoch": 0})
    assert progress.eta_seconds() is None  # no fit of either kind has ended yet
    now[0] = 100.0
    progress.finished("g1", 100.0)
    progress.epoch("g2", {"epoch": 3, "val_loss": 0.5})
    progress.epoch("s0", {"epoch": 0})
    now[0] = 130.0
    progress.finished("s0", 10.0)
    progress.epoch("s0", {"epoch": 0})  # a start record that arrives late is stale
    assert "s0" not in progress.running
    # g2: 100 s, 30 spent, one at a time; s1..s4: 10 s each on two workers
    assert progress.eta_seconds() == pytest.approx(70.0 + 4 * 10.0 / 2)
    assert progress.completed == 3 and progress.total == 8
    running = progress.snapshot()["running"]
    assert running["g2"] == {"seconds": 30.0, "epoch": {"epoch": 3, "val_loss": 0.5}}
    progress.finished("s1", 0.0, error="ValueError: no data")
    progress.close()
    written = json.loads((tmp_path / "progress.json").read_text())
    assert written["state"] == "finished" and written["done"] == 3 and written["total"] == 8
    assert written["failed"] == ["s1"] and written["resumed"] == 1
