"""End-to-end runs of the trainer: spawned workers, one bad symbol, Dask."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import psutil
import pytest

import ml.state_space.orchestration.run as orchestrate
from ml.state_space.data.sources import load_history
from ml.state_space.execution.pool import local_workers, worker_threads
from ml.state_space.orchestration.run import TrainingRun
from ml.state_space.registry import ModelRegistry
from tests.conftest import tiny_training_config

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_mamba_models.py"

TINY_FLAGS = [
    "--epochs",
    "1",
    "--d-model",
    "16",
    "--n-layers",
    "1",
    "--seq-len",
    "20",
    "--horizons",
    "1,5",
    "--days",
    "700",
    "--offline",
    "--no-xla",  # XLA's compile costs a tiny model more than it saves
    "--log-level",
    "WARNING",
]


def _run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_local_workers_and_threads_share_the_cores():
    assert [local_workers(p, cores=2) for p in (1, 2, 10)] == [1, 2, 2]
    assert local_workers(10, cores=16) == 10
    assert worker_threads(1, cores=2) == 2
    assert worker_threads(2, cores=2) == 1
    assert worker_threads(4, cores=16) == 4


def test_cli_trains_two_symbols_and_skips_one_without_data(tmp_path):
    models = tmp_path / "models"
    done = _run_cli(
        "--symbols",
        "AAPL,^GSPC,NODATA1",
        "--parallel",
        "2",
        "--models-dir",
        str(models),
        *TINY_FLAGS,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    registry = ModelRegistry(models)
    assert registry.symbols() == ["AAPL", "^GSPC"]
    for symbol in ("AAPL", "^GSPC"):
        artifacts = registry.load_artifacts(symbol)
        assert artifacts.metadata["symbol"] == symbol
        assert set(registry.load_metrics(symbol)["test"]) == {"h1", "h5"}
    [run_file] = (models / "runs").glob("*.json")
    run = json.loads(run_file.read_text())
    statuses = {o["symbol"]: o["status"] for o in run["outcomes"]}
    assert statuses == {"AAPL": "trained", "^GSPC": "trained", "NODATA1": "no_data"}
    assert "NODATA1" in done.stdout and "skill h1" in done.stdout


def test_cli_rejects_malformed_symbols_before_any_work(tmp_path):
    done = _run_cli("--symbols", "AAPL,../etc", "--models-dir", str(tmp_path), *TINY_FLAGS)
    assert done.returncode == 2
    assert "../etc" in done.stderr
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "flag",
    [
        ["--epochs", "0"],
        ["--batch-size", "0"],
        ["--parallel", "0"],
        ["--days", "-5"],
        ["--learning-rate", "nan"],
        ["--seq-len", "x"],
    ],
)
def test_cli_rejects_non_positive_settings_as_usage_errors(tmp_path, flag):
    from scripts.train_mamba_models import parse_args

    with pytest.raises(SystemExit) as stopped:
        parse_args(["--symbols", "AAPL", "--models-dir", str(tmp_path), *flag])
    assert stopped.value.code == 2


def test_one_bad_symbol_does_not_stop_the_others(tmp_path, monkeypatch):
    def fake_history(symbol, offline=None, prices=None):
        prices = load_history("AAPL", offline=True)
        if symbol == "MSFT":
            prices = prices.copy()
            prices.iloc[-5:, 0] = np.nan
        return prices

    monkeypatch.setattr(orchestrate, "load_history", fake_history)
    registry = ModelRegistry(tmp_path)
    run = TrainingRun(registry, tiny_training_config(epochs=1), parallel=2, offline=True)
    summary = asyncio.run(run.run(["AAPL", "MSFT"]))
    statuses = {o.symbol: o.status for o in summary.outcomes}
    assert statuses == {"AAPL": "trained", "MSFT": "bad_data"}
    assert "NaN" in summary.outcomes[1].reason or "nan" in summary.outcomes[1].reason.lower()
    assert summary.exit_code == 1
    assert registry.symbols() == ["AAPL"]


def test_skip_existing_leaves_trained_models_alone(tmp_path):
    models = tmp_path / "models"
    assert _run_cli("--symbols", "KO", "--models-dir", str(models), *TINY_FLAGS).returncode == 0
    before = ModelRegistry(models).load_metadata("KO")["version"]
    again = _run_cli("--symbols", "KO", "--skip-existing", "--models-dir", str(models), *TINY_FLAGS)
    assert again.returncode == 0
    assert ModelRegistry(models).load_metadata("KO")["version"] == before


def test_dask_scheduler_trains_and_client_writes_artifacts(tmp_path, dask_cluster):
    models = tmp_path / "models"
    done = _run_cli(
        "--symbols", "JNJ", "--scheduler", dask_cluster, "--models-dir", str(models), *TINY_FLAGS
    )
    assert done.returncode == 0, done.stderr[-3000:]
    registry = ModelRegistry(models)
    assert registry.symbols() == ["JNJ"]
    assert registry.load_artifacts("JNJ").metadata["symbol"] == "JNJ"
    assert not (models / "checkpoints").exists()  # workers kept their scratch state locally


def _foreground_sigint() -> None:
    """Give the child the default SIGINT handling of a terminal's foreground job: under a
    non-interactive shell's ``&`` (as in CI) SIGINT is inherited as ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _train_until_first_model(models: Path) -> subprocess.Popen:
    """Start a 2-symbol, 1-worker run that would take long, return once a model exists."""
    args = ["--symbols", "AAPL,MSFT", "--parallel", "1", "--models-dir", str(models), *TINY_FLAGS]
    args[args.index("--epochs") + 1] = "200"
    args[args.index("--days") + 1] = "3000"
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), *args, "--log-level", "INFO"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_foreground_sigint,
    )
    deadline = time.monotonic() + 240
    while not ModelRegistry(models).symbols():  # a complete model, not a temporary file
        assert process.poll() is None and time.monotonic() < deadline, "first model never finished"
        time.sleep(0.1)
    return process


def _assert_gone(pids: list[int], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    alive = pids
    while alive and time.monotonic() < deadline:
        alive = [
            pid
            for pid in alive
            if psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        ]
        time.sleep(0.2)
    assert not alive, f"orphaned worker processes: {alive}"


def test_ctrl_c_stops_cleanly_and_keeps_finished_models(tmp_path):
    models = tmp_path / "models"
    process = _train_until_first_model(models)
    os.killpg(process.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr[-2000:]
    [run_file] = (models / "runs").glob("*.json")
    run = json.loads(run_file.read_text())
    assert run["interrupted"] is True
    statuses = {o["symbol"]: o["status"] for o in run["outcomes"]}
    finished = ModelRegistry(models).symbols()
    assert len(finished) == 1 and statuses[finished[0]] == "trained"
    assert "cancelled" in statuses.values()


def test_sigterm_stops_like_ctrl_c_and_leaves_no_worker_behind(tmp_path):
    models = tmp_path / "models"
    process = _train_until_first_model(models)
    workers = [child.pid for child in psutil.Process(process.pid).children(recursive=True)]
    process.send_signal(signal.SIGTERM)  # the parent only, as timeout/systemd/k8s do
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr[-2000:]
    [run_file] = (models / "runs").glob("*.json")
    run = json.loads(run_file.read_text())
    assert run["interrupted"] is True and run["exit_code"] == 143
    assert len(ModelRegistry(models).symbols()) == 1
    _assert_gone(workers)


def test_workers_exit_when_the_parent_is_killed(tmp_path):
    process = _train_until_first_model(tmp_path / "models")
    workers = [child.pid for child in psutil.Process(process.pid).children(recursive=True)]
    assert workers
    process.kill()  # kill -9: no handler runs in the parent
    process.communicate(timeout=60)
    _assert_gone(workers)


class _SlowRegistry:
    """Saves block until released, so a test can interrupt a run mid-save."""

    def __init__(self, error: OSError | None = None) -> None:
        self.release, self.saved, self.error = threading.Event(), [], error
        self.scratch = Path(tempfile.mkdtemp())

    def checkpoint_dir(self, symbol: str) -> Path:
        return self.scratch / symbol

    def save(self, symbol, model_bytes, metadata, metrics) -> None:
        self.release.wait(10)
        if self.error:
            raise self.error
        self.saved.append(symbol)


def _finished_result(symbol: str) -> SimpleNamespace:
    metrics = {
        "best_epoch": 1,
        "epochs": [{"epoch": 1, "val_loss": 0.5}],
        "stop_reason": "early_stopping",
        "training_seconds": 2.0,
        "test": {"h1": {"skill_vs_random_walk": 0.01}},
    }
    return SimpleNamespace(
        symbol=symbol, model_bytes=b"", metadata={"version": "v1"}, metrics=metrics
    )


def test_an_interrupted_save_completes_and_is_recorded():
    async def interrupt_mid_save() -> tuple[dict, _SlowRegistry]:
        registry, outcomes = _SlowRegistry(), {}
        registry.checkpoint_dir("AAPL").mkdir()  # the fit's scratch state
        run = TrainingRun(registry, tiny_training_config())
        task = asyncio.create_task(run._record("AAPL", _finished_result("AAPL"), 2.0, outcomes))
        await asyncio.sleep(0.05)  # the save is now running in its thread
        task.cancel()
        registry.release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        return outcomes, registry

    outcomes, registry = asyncio.run(interrupt_mid_save())
    assert registry.saved == ["AAPL"]
    assert outcomes["AAPL"].status == "trained" and outcomes["AAPL"].version == "v1"
    assert not registry.checkpoint_dir("AAPL").exists()  # committed: nothing left to resume


def test_an_interrupt_waits_for_saves_under_way_before_the_summary(monkeypatch):
    """Ctrl-C while one symbol is saving and another training: the run stops only once
    the save has finished and been recorded, so the summary lists every model on disk."""
    training = threading.Event()

    def fake_run_job(job):
        if job.symbol == "MSFT":
            training.wait(10)  # still training when the run is interrupted
        return _finished_result(job.symbol)

    monkeypatch.setattr(orchestrate, "run_job", fake_run_job)

    async def interrupt_while_saving() -> dict:
        registry, outcomes = _SlowRegistry(), {}
        run = TrainingRun(registry, tiny_training_config())
        jobs = [SimpleNamespace(symbol=symbol) for symbol in ("AAPL", "MSFT")]
        with ThreadPoolExecutor(max_workers=2) as pool:
            task = asyncio.create_task(run._run_jobs(pool, jobs, outcomes))
            await asyncio.sleep(0.1)  # AAPL is saving, MSFT training
            task.cancel()
            await asyncio.sleep(0.05)
            assert not task.done()  # held by the save under way
            registry.release.set()
            with pytest.raises(asyncio.CancelledError):
                await task
            training.set()
        return outcomes

    outcomes = asyncio.run(interrupt_while_saving())
    assert outcomes["AAPL"].status == "trained" and "MSFT" not in outcomes


def test_a_failed_save_fails_that_symbol_only():
    registry, outcomes = _SlowRegistry(OSError(28, "No space left on device")), {}
    registry.release.set()
    registry.checkpoint_dir("AAPL").mkdir()
    run = TrainingRun(registry, tiny_training_config())
    asyncio.run(run._record("AAPL", _finished_result("AAPL"), 2.0, outcomes))
    assert outcomes["AAPL"].status == "failed"
    assert registry.checkpoint_dir("AAPL").is_dir()  # --resume retrains it
    assert "No space left" in outcomes["AAPL"].reason


def test_resume_finishes_an_interrupted_retrain_of_a_symbol_that_has_a_model(tmp_path):
    registry = ModelRegistry(tmp_path / "models")
    registry.has_model = lambda symbol: True  # every symbol already has a model
    registry.checkpoint_dir("AAPL").mkdir(parents=True)  # AAPL's new version never committed
    resuming = TrainingRun(registry, tiny_training_config(), resume=True)
    skipping = TrainingRun(registry, tiny_training_config(), skip_existing=True)
    assert not resuming._already_done("AAPL") and resuming._already_done("MSFT")
    assert skipping._already_done("AAPL") and skipping._already_done("MSFT")


def test_a_models_dir_that_is_a_file_is_a_usage_error(tmp_path, capsys):
    from scripts.train_mamba_models import parse_args

    a_file = tmp_path / "models"
    a_file.write_text("not a directory")
    with pytest.raises(SystemExit) as stopped:
        parse_args(["--symbols", "AAPL", "--models-dir", str(a_file)])
    assert stopped.value.code == 2
    assert "is not a writable directory" in capsys.readouterr().err


def test_the_longest_fits_are_queued_first(tmp_path, monkeypatch):
    lengths = {"SHORT": 800, "LONG": 3000, "MID": 1500}

    async def fake_fetch_all(symbols, offline, prices=None):
        prices = load_history("AAPL", offline=True)
        return {s: prices.iloc[-lengths[s] :] for s in symbols}

    monkeypatch.setattr(orchestrate, "fetch_all", fake_fetch_all)
    run = TrainingRun(ModelRegistry(tmp_path), tiny_training_config(days=None), offline=True)
    jobs = asyncio.run(run._prepare(["SHORT", "LONG", "MID"], {}))
    assert [job.symbol for job in jobs] == ["LONG", "MID", "SHORT"]
    capped = TrainingRun(ModelRegistry(tmp_path), tiny_training_config(days=1000), offline=True)
    jobs = asyncio.run(capped._prepare(["SHORT", "LONG", "MID"], {}))
    assert [job.symbol for job in jobs] == ["LONG", "MID", "SHORT"]  # ties keep their order


def test_training_histories_go_through_the_artefact_policy():
    histories = asyncio.run(orchestrate.fetch_all(["ANTM", "KO"], offline=True))
    assert str(histories["ANTM"].index[0].date()) == "2005-06-02"  # the unrecorded split
    assert histories["KO"].index[0] == load_history("KO", offline=True).index[0]
    assert "2003-01-29" in histories["KO"].attrs["flagged"]
