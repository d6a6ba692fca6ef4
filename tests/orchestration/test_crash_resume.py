"""A real training run killed with SIGKILL at each critical moment, then resumed.

The kill comes from an audit hook that ``sitecustomize`` installs in every process of
the run (the parent and its spawned workers), so the code under test is the shipped
CLI, unpatched: no exception handler and no clean-up runs at the moment of the kill.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ml.state_space.data.sources import load_history
from ml.state_space.forecast import ServedModel
from ml.state_space.registry import ModelRegistry
from tests.orchestration.test_run import SCRIPT, TINY_FLAGS

pytestmark = pytest.mark.slow

KILL_HOOK = """
import os, signal, sys

MOMENT = os.environ.get("KILL_AT")


def _kill():
    os.kill(os.getpid(), signal.SIGKILL)


def _hook(event, args):
    if event == "os.rename" and MOMENT == "weights" and str(args[1]).endswith("model.keras"):
        _kill()  # the new weights are whole in their temporary file, not yet in place
    elif event == "os.rename" and MOMENT == "pointer" and str(args[1]).endswith(
        os.path.join("current", "AAPL")
    ):
        _kill()  # the new version is complete, the pointer not yet switched to it
    elif event == "os.rename" and MOMENT == "state" and str(args[1]).endswith("latest.npz"):
        SAVES.append(args[1])
        if len(SAVES) == 2:
            _kill()  # in the worker, as it saves its second epoch's state: the first's stays


SAVES = []
if MOMENT:
    sys.addaudithook(_hook)
"""


def _train(
    models: Path, hooks: Path, *extra: str, kill_at: str = ""
) -> subprocess.CompletedProcess:
    args = ["--symbols", "AAPL", "--parallel", "1", "--models-dir", str(models), *TINY_FLAGS]
    args[args.index("--epochs") + 1] = "2"
    environment = {**os.environ, "KILL_AT": kill_at}
    environment["PYTHONPATH"] = os.pathsep.join([str(hooks), environment.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args, *extra],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
    )


def _serves(registry: ModelRegistry, prices) -> str:
    """The version a freshly loaded service would forecast with."""
    model = ServedModel.from_artifacts(registry.load_artifacts("AAPL"), {})
    forecast = model.predict(prices, "AAPL")
    assert len(forecast.horizons) == 2
    return forecast.model_version


def test_a_retrain_killed_at_each_critical_moment_keeps_the_old_version_and_resume_completes(
    tmp_path,
):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(KILL_HOOK)
    models = tmp_path / "models"
    registry = ModelRegistry(models)
    prices = load_history("AAPL", offline=True)

    first = _train(models, hooks)
    assert first.returncode == 0, first.stderr[-3000:]
    old = registry.current_version("AAPL")

    # a retrain, then two resumes, each killed at a later moment of the same unfinished fit
    for moment, extra in (("state", ()), ("weights", ("--resume",)), ("pointer", ("--resume",))):
        killed = _train(models, hooks, *extra, kill_at=moment)
        if moment == "state":  # the worker died: the parent records the failure
            assert killed.returncode == 1, killed.stderr[-3000:]
        else:  # the parent died mid-save
            assert killed.returncode == -9, killed.stderr[-3000:]
        assert registry.current_version("AAPL") == old, moment
        assert _serves(registry, prices) == old, moment
        assert registry.checkpoint_dir("AAPL").is_dir(), moment  # still unfinished
        if moment == "state":  # what the first resume goes on from: epoch 1, whole
            with np.load(registry.checkpoint_dir("AAPL") / "state" / "latest.npz") as state:
                assert int(state["epochs"]) == 1

    resumed = _train(models, hooks, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    last_run = sorted((models / "runs").glob("*.json"))[-1]
    [outcome] = json.loads(last_run.read_text())["outcomes"]
    assert outcome["status"] == "trained"
    new = registry.current_version("AAPL")
    assert new == outcome["version"] != old and _serves(registry, prices) == new
    # the old one kept for rollback (and the version the pointer kill left uncommitted)
    assert registry.versions("AAPL")[0] == old and registry.versions("AAPL")[-1] == new
    assert not registry.checkpoint_dir("AAPL").exists()  # nothing left to resume
