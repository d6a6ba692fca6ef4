"""Atomic writes: all or nothing, with the permissions of an ordinary file."""

from __future__ import annotations

import os
import stat

import pytest

from ml.state_space.atomic import atomic_write, atomic_write_json, current_umask


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    current_umask.cache_clear()
    yield
    os.umask(old)
    current_umask.cache_clear()


def test_written_files_get_ordinary_permissions_not_temp_file_ones(tmp_path, umask_022):
    path = atomic_write_json(tmp_path / "card.json", {"a": 1})
    assert stat.S_IMODE(path.stat().st_mode) == 0o644  # not mkstemp's 0o600


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = atomic_write_json(tmp_path / "metrics.json", {"old": True})

    def crash(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, crash)
    assert path.read_text().strip().startswith("{") and '"old": true' in path.read_text()
    assert os.listdir(tmp_path) == ["metrics.json"]
