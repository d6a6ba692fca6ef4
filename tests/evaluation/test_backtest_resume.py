"""A real backtest killed with SIGKILL mid-run, then resumed with ``--resume``.

The kill comes from an audit hook that ``sitecustomize`` installs in the run's processes:
the parent dies as it is about to move its fifth finished task's rows into place, so no
handler and no clean-up runs. The shipped CLI is unpatched; the resume and the
uninterrupted run it is compared with run in this process (what they do is the same).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from scripts.backtest import main
from scripts.compare_backtests import main as compare

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "backtest.py"
ARGS = ["--symbols", "AAPL,KO", "--years", "2019-2020", "--models", "rw,drift,garch"]
ARGS += ["--offline", "--parallel", "1", "--no-plots", "--no-publish"]

KILL_HOOK = """
import os, signal, sys

SAVES = []


def _hook(event, args):
    if event == "os.rename" and str(args[1]).endswith(".parquet") and "tasks" in str(args[1]):
        SAVES.append(args[1])
        if len(SAVES) == 5:
            os.kill(os.getpid(), signal.SIGKILL)


if os.environ.get("KILL_AT_SAVE"):
    sys.addaudithook(_hook)
"""


def _killed_backtest(out: Path, hooks: Path) -> subprocess.CompletedProcess:
    environment = {**os.environ, "KILL_AT_SAVE": "1"}
    environment["PYTHONPATH"] = os.pathsep.join([str(hooks), environment.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, str(SCRIPT), *ARGS, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
    )


def test_a_killed_backtest_resumes_without_rerunning_its_finished_tasks(tmp_path, capsys, caplog):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(KILL_HOOK)
    out = tmp_path / "killed"

    killed = _killed_backtest(out, hooks)
    assert killed.returncode == -9, killed.stderr[-3000:]
    tasks = sorted((out / "tasks").glob("*.parquet"))
    assert len(tasks) == 4  # whole files only: the fifth was not yet in place
    assert not (out / "forecasts.parquet").exists()
    assert json.loads((out / "progress.json").read_text())["state"] == "running"
    written = {path.name: path.stat().st_mtime_ns for path in tasks}

    assert main([*ARGS, "--out", str(out)]) == 2  # an unfinished run is never overwritten
    assert "add --resume" in capsys.readouterr().err
    assert compare([str(out)]) == 2  # nor compared as if it were whole
    assert "unfinished backtest (4 of 12 tasks done" in capsys.readouterr().err

    with caplog.at_level(logging.INFO):
        assert main([*ARGS, "--out", str(out), "--resume"]) == 0
    assert "12 tasks on 2 symbols, 4 finished before" in caplog.text
    assert {p.name: p.stat().st_mtime_ns for p in tasks} == written  # not run again
    assert len(list((out / "tasks").glob("*.parquet"))) == 12
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tasks"] == 12 and summary["resumed_tasks"] == 4
    assert json.loads((out / "progress.json").read_text())["state"] == "finished"

    assert main([*ARGS, "--out", str(tmp_path / "whole")]) == 0  # uninterrupted
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "forecasts.parquet"),
        pd.read_parquet(tmp_path / "whole" / "forecasts.parquet"),
    )
