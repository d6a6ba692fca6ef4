import json
import os
import re
import time

import pytest

from ml.state_space.atomic import atomic_write_bytes, atomic_write_json
from ml.state_space.data.symbols import InvalidSymbolError
from ml.state_space.registry import (
    ArtifactMismatchError,
    CorruptArtifactError,
    ModelNotFoundError,
    ModelRegistry,
    sha256_hex,
)


def _save(registry: ModelRegistry, symbol: str = "AAPL", payload: bytes = b"weights-v1"):
    return registry.save(symbol, payload, {"symbol": symbol, "version": "v1"}, {"symbol": symbol})


def test_save_then_load_round_trips(tmp_path):
    registry = ModelRegistry(tmp_path)
    _save(registry)
    artifacts = registry.load_artifacts("aapl")
    assert artifacts.model_bytes == b"weights-v1"
    assert artifacts.metadata["version"] == "v1"
    assert registry.symbols() == ["AAPL"]
    assert registry.load_metrics("AAPL") == {"symbol": "AAPL"}


def test_missing_model_error_says_how_to_train(tmp_path):
    with pytest.raises(ModelNotFoundError, match=re.escape("train_mamba_models.py --symbols MSFT")):
        ModelRegistry(tmp_path).load_artifacts("MSFT")


def test_weights_that_do_not_match_metadata_are_refused(tmp_path):
    registry = ModelRegistry(tmp_path)
    _save(registry)
    registry.weights_path("AAPL").write_bytes(b"weights-v2-half-written")
    with pytest.raises(ArtifactMismatchError):
        registry.load_artifacts("AAPL")


@pytest.mark.parametrize("symbol", ["../etc/passwd", "..", "a/b", "", "AAPL\x00"])
def test_paths_never_built_from_unvalidated_symbols(tmp_path, symbol):
    with pytest.raises(InvalidSymbolError):
        ModelRegistry(tmp_path).weights_path(symbol)


def test_symbols_lists_only_complete_models(tmp_path):
    registry = ModelRegistry(tmp_path)
    _save(registry, "AAPL")
    atomic_write_bytes(registry.version_dir("MSFT", "v1") / "model.keras", b"no metadata yet")
    atomic_write_bytes(registry.pointer_path("MSFT"), b"v1\n")
    atomic_write_bytes(registry.pointer_path("JPM"), b"v9\n")  # names no version
    assert registry.symbols() == ["AAPL"]
    assert not registry.has_model("MSFT") and not registry.has_model("JPM")


def _save_versions(registry: ModelRegistry, count: int, symbol: str = "AAPL") -> list[str]:
    return [
        registry.save(symbol, f"w{i}".encode(), {"version": f"2026010{i}T000000Z-v"}, {"i": i})[
            "version"
        ]
        for i in range(1, count + 1)
    ]


def test_each_save_is_a_new_immutable_version_and_rollback_switches_back(tmp_path):
    registry = ModelRegistry(tmp_path)
    first, second = _save_versions(registry, 2)
    assert registry.versions("AAPL") == [first, second]
    assert registry.current_version("AAPL") == second
    assert registry.load_artifacts("AAPL").model_bytes == b"w2"
    before = registry.fingerprint("AAPL")

    assert registry.rollback("AAPL") == first
    assert registry.load_artifacts("AAPL").model_bytes == b"w1"
    assert registry.load_metrics("AAPL") == {"i": 1}
    assert registry.fingerprint("AAPL") != before  # a service reloads on its next request
    with pytest.raises(ModelNotFoundError, match="no version older"):
        registry.rollback("AAPL")
    assert registry.rollback("AAPL", second) == second
    with pytest.raises(ModelNotFoundError, match="no version 'nope'"):
        registry.rollback("AAPL", "nope")


def test_a_version_directory_is_never_written_twice(tmp_path):
    registry = ModelRegistry(tmp_path)
    first = _save(registry)["version"]
    second = _save(registry)["version"]  # the same card version saved again
    assert first == "v1" and second != first
    assert registry.load_artifacts("AAPL").metadata["version"] == second


def test_only_the_last_keep_versions_are_kept_and_never_the_current_removed(tmp_path):
    registry = ModelRegistry(tmp_path, keep_versions=2)
    versions = _save_versions(registry, 4)
    assert registry.versions("AAPL") == versions[2:]
    registry.rollback("AAPL")  # the current is now the older of the two
    registry.save("AAPL", b"w5", {"version": "20260105T000000Z-v"}, {})
    assert registry.versions("AAPL") == [versions[3], "20260105T000000Z-v"]
    with pytest.raises(ValueError, match="keep_versions"):
        ModelRegistry(tmp_path, keep_versions=0)


@pytest.mark.parametrize("crash_at", [0, 1, 2, 3])
def test_a_crash_at_any_write_of_a_save_leaves_the_previous_version_serving(
    tmp_path, monkeypatch, crash_at
):
    """The writes of a save: weights, metrics, metadata, then the pointer (the commit
    point). A crash before the pointer's rename leaves the old version current and whole."""
    import ml.state_space.registry as registry_module

    registry = ModelRegistry(tmp_path)
    [old] = _save_versions(registry, 1)
    writes = {"count": 0}

    def crashing(write):
        def wrapped(path, data):
            if writes["count"] == crash_at:
                raise OSError(28, "No space left on device")
            writes["count"] += 1
            return write(path, data)

        return wrapped

    monkeypatch.setattr(registry_module, "atomic_write_bytes", crashing(atomic_write_bytes))
    monkeypatch.setattr(registry_module, "atomic_write_json", crashing(atomic_write_json))
    with pytest.raises(OSError):
        registry.save("AAPL", b"w-new", {"version": "20260109T000000Z-new"}, {})
    monkeypatch.undo()
    assert registry.current_version("AAPL") == old
    assert registry.load_artifacts("AAPL").model_bytes == b"w1"
    complete_but_not_current = ["20260109T000000Z-new"] if crash_at == 3 else []
    assert registry.versions("AAPL") == [old, *complete_but_not_current]  # never half
    assert registry.save("AAPL", b"w2", {"version": "20260110T000000Z-v"}, {})  # and next
    assert registry.load_artifacts("AAPL").model_bytes == b"w2"


KILLED_SAVE = """
import os, signal, sys
from ml.state_space.registry import ModelRegistry

root, moment, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
calls = {"fsync": 0, "replace": 0}

def killing(name, before):
    real = getattr(os, name)
    def call(*args):
        calls[name] += 1
        if before and calls[name] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args)
        if not before and calls[name] == n:
            os.kill(os.getpid(), signal.SIGKILL)
        return result
    return call

if moment == "temp-written":  # the temporary file is whole, not yet renamed
    os.fsync = killing("fsync", before=True)
else:  # "renamed": the n-th file is in place, the next one not started
    os.replace = killing("replace", before=False)
ModelRegistry(root).save("AAPL", b"w-new" * 1000, {"version": "20260109T000000Z-new"}, {})
"""


@pytest.mark.parametrize("moment", ["temp-written", "renamed"])
@pytest.mark.parametrize("write", [1, 2, 3, 4])
def test_kill_9_at_any_moment_of_a_save_leaves_one_whole_version_serving(tmp_path, moment, write):
    """A real SIGKILL in another process (no exception handler, no clean-up runs) at each
    of the four writes of a save: weights, metrics, metadata, pointer."""
    import subprocess
    import sys

    registry = ModelRegistry(tmp_path)
    [old] = _save_versions(registry, 1)
    process = subprocess.run(
        [sys.executable, "-c", KILLED_SAVE, str(tmp_path), moment, str(write)],
        capture_output=True,
        env={**os.environ, "PYTHONPATH": "src"},
    )
    assert process.returncode == -9, process.stderr.decode()

    committed = moment == "renamed" and write == 4  # the pointer's rename is the commit
    current = "20260109T000000Z-new" if committed else old
    assert registry.current_version("AAPL") == current
    assert registry.load_artifacts("AAPL").model_bytes == (b"w-new" * 1000 if committed else b"w1")
    complete_new = committed or (moment == "renamed" and write == 3) or write == 4
    assert registry.versions("AAPL") == [old, *(["20260109T000000Z-new"] * complete_new)]

    registry.remove_stale_temp_files(older_than_s=-1)  # what the next run does at start
    assert not list(tmp_path.rglob("*.tmp"))
    assert all(registry.version_dir("AAPL", v).is_dir() for v in registry.versions("AAPL"))
    assert len(list((tmp_path / "versions" / "AAPL").iterdir())) == 1 + complete_new
    registry.save("AAPL", b"w-next", {"version": "20260110T000000Z-v"}, {})
    assert registry.load_artifacts("AAPL").model_bytes == b"w-next"


def test_a_pointer_that_names_nothing_readable_is_a_clear_error(tmp_path):
    registry = ModelRegistry(tmp_path)
    _save(registry)
    registry.pointer_path("AAPL").write_text("../../etc\n")
    with pytest.raises(CorruptArtifactError, match="current/AAPL"):
        registry.load_artifacts("AAPL")


def test_models_of_the_old_flat_layout_are_adopted_as_versions(tmp_path):
    registry = ModelRegistry(tmp_path)
    atomic_write_bytes(tmp_path / "weights" / "AAPL.keras", b"old-weights")
    atomic_write_json(
        tmp_path / "metadata" / "AAPL.json",
        {"version": "20250101T000000Z-old", "weights_sha256": sha256_hex(b"old-weights")},
    )
    atomic_write_json(tmp_path / "metrics" / "AAPL.json", {"old": True})
    assert registry.adopt_legacy_layout() == ["AAPL"]
    assert registry.current_version("AAPL") == "20250101T000000Z-old"
    assert registry.load_artifacts("AAPL").model_bytes == b"old-weights"
    assert registry.load_metrics("AAPL") == {"old": True}
    assert not (tmp_path / "weights" / "AAPL.keras").exists()
    assert registry.adopt_legacy_layout() == []


def test_the_versions_cli_lists_and_rolls_back(tmp_path, capsys):
    from scripts.model_versions import main

    registry = ModelRegistry(tmp_path)
    first, second = _save_versions(registry, 2)
    assert main(["--models-dir", str(tmp_path), "list"]) == 0
    assert capsys.readouterr().out == f"AAPL: {first}, {second} (current)\n"
    assert main(["--models-dir", str(tmp_path), "rollback", "aapl"]) == 0
    assert registry.current_version("AAPL") == first
    assert main(["--models-dir", str(tmp_path), "rollback", "MSFT"]) == 1
    assert "No trained model for 'MSFT'" in capsys.readouterr().err


def test_atomic_write_leaves_old_file_when_writer_crashes(tmp_path):
    target = tmp_path / "file.json"
    atomic_write_json(target, {"a": 1})

    def crash(_tmp):
        raise RuntimeError("disk full")

    from ml.state_space.atomic import atomic_write

    with pytest.raises(RuntimeError):
        atomic_write(target, crash)
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["file.json"]


def test_atomic_json_writes_nan_as_null(tmp_path):
    target = atomic_write_json(
        tmp_path / "m.json", {"loss": float("nan"), "x": [float("inf"), 1.0]}
    )
    assert json.loads(target.read_text()) == {"loss": None, "x": [None, 1.0]}
    assert atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01").read_bytes() == b"\x00\x01"


def test_temporary_files_left_by_a_crash_are_removed_and_recent_ones_kept(tmp_path):
    registry = ModelRegistry(tmp_path / "models")
    (registry.root / "weights").mkdir(parents=True)
    stale = registry.root / "weights" / ".AAPL.keras.x1y2.tmp"
    fresh = registry.root / "weights" / ".MSFT.keras.a1b2.tmp"
    kept = registry.root / "weights" / "AAPL.keras"
    for path in (stale, fresh, kept):
        path.write_bytes(b"partial")
    an_hour_ago = time.time() - 2 * 3600
    os.utime(stale, (an_hour_ago, an_hour_ago))
    half_written = registry.version_dir("AAPL", "v2")  # a crash before its metadata
    atomic_write_bytes(half_written / "model.keras", b"partial")
    os.utime(half_written, (an_hour_ago, an_hour_ago))
    assert registry.remove_stale_temp_files() == [stale, half_written]
    assert not stale.exists() and fresh.exists() and kept.exists()
    assert not half_written.exists()


def test_the_training_benchmark_reads_epoch_times_from_the_current_versions(tmp_path):
    from scripts.bench_training import compile_ratios

    registry = ModelRegistry(tmp_path)
    for symbol, seconds in (("AAPL", [9.0, 2.0, 4.0, 3.0]), ("MSFT", [5.0])):
        epochs = [{"epoch": i + 1, "seconds": s} for i, s in enumerate(seconds)]
        registry.save(symbol, b"w", {"version": "v1"}, {"epochs": epochs})
    assert compile_ratios(tmp_path) == [3.0]  # 9 s over the median later epoch; MSFT has one
