"""Crash-safe file writes: write to a temporary sibling, fsync, then rename."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and atomically move the result to ``path``.

    The temporary file lives in the destination directory, so ``os.replace`` is a
    rename on one filesystem: readers see the old file or the new one, never half. The
    file gets the permissions a plain ``open`` would give it (``0o666`` less the umask),
    not the ``0o600`` of a temporary file, so a service running as another user can
    read it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        tmp.chmod(0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@cache
def current_umask() -> int:
    """The process umask, read once (reading it means setting it: not done per write,
    where another thread could create a file in between)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Atomically replace ``path`` with ``data``."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def json_safe(value: Any) -> Any:
    """Return ``value`` with non-finite floats replaced by ``None`` (strict JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(item) for item in value]
    return value


def atomic_write_json(path: str | os.PathLike[str], payload: Any) -> Path:
    """Atomically replace ``path`` with ``payload`` as indented, strict JSON."""
    text = json.dumps(json_safe(payload), indent=2, sort_keys=True, allow_nan=False, default=str)
    return atomic_write(path, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))
