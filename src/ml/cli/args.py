"""Argument types shared by the command-line scripts."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def positive_int(text: str) -> int:
    """An integer >= 1 (``--epochs 0`` is a usage error, not a crash later)."""
    try:
        value = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from error
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0."""
    try:
        value = float(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from error
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{value} must be a finite number > 0")
    return value


def writable_directory(text: str) -> str:
    """A directory this process can write into, created if missing: a models directory
    that is a file or read-only is a usage error before any work, not a crash after it."""
    try:
        Path(text).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=text):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        message = f"{text!r} is not a writable directory ({reason})"
        raise argparse.ArgumentTypeError(message) from error
    return text
