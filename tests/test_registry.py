import json
import os
import re
import time

import pytest

from ml.state_space.atomic import atomic_write_bytes, atomic_write_json
from ml.state_space.data.symbols import InvalidSymbolError
from ml.state_space.registry import ArtifactMismatchError, ModelNotFoundError, ModelRegistry


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
        registry.load_artifacts("AAPL", retries=1)


@pytest.mark.parametrize("symbol", ["../etc/passwd", "..", "a/b", "", "AAPL\x00"])
def test_paths_never_built_from_unvalidated_symbols(tmp_path, symbol):
    with pytest.raises(InvalidSymbolError):
        ModelRegistry(tmp_path).weights_path(symbol)


def test_symbols_lists_only_complete_models(tmp_path):
    registry = ModelRegistry(tmp_path)
    _save(registry, "AAPL")
    atomic_write_json(registry.metadata_path("MSFT"), {"symbol": "MSFT"})
    assert registry.symbols() == ["AAPL"]


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
    assert registry.remove_stale_temp_files() == [stale]
    assert not stale.exists() and fresh.exists() and kept.exists()
