"""The artefact store: one directory tree per model family, every write atomic.

Layout under ``root`` (default ``models/mamba``)::

    weights/<SYMBOL>.keras      the trained Keras model
    metadata/<SYMBOL>.json      config, features, normaliser, data, versions, weights_sha256
    metrics/<SYMBOL>.json       learning curves and held-out test metrics
    checkpoints/<SYMBOL>/       best-epoch checkpoint and BackupAndRestore state
    runs/<RUN_ID>.json          one summary per training run
    backtest.json               walk-forward figures of this model family, per symbol and horizon

A model and its metadata are one version: the metadata records the SHA-256 of
the weights it belongs to, and :meth:`ModelRegistry.load_artifacts` refuses a
pair whose hashes disagree (a replacement caught half-way), so a reader never
pairs new weights with old scalers.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml.state_space.atomic import atomic_write_bytes, atomic_write_json
from ml.state_space.data.symbols import validate_symbol

logger = logging.getLogger(__name__)

DEFAULT_ROOT = Path("models") / "mamba"


STALE_TEMP_S = 3600.0  # a temporary file this old has no writer left


class ModelNotFoundError(LookupError):
    """No trained model exists for a symbol."""


class CorruptArtifactError(RuntimeError):
    """A model file exists but cannot be read; the message names the file and the fix."""


class ArtifactMismatchError(RuntimeError):
    """The weights on disk do not belong to the metadata on disk."""


@dataclass(frozen=True)
class ModelArtifacts:
    """A consistent (weights, metadata) pair read from disk."""

    symbol: str
    model_bytes: bytes
    metadata: dict[str, Any]
    fingerprint: tuple[int, ...]


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


class ModelRegistry:
    """Reads and writes per-symbol artefacts under one root directory."""

    def __init__(self, root: str | Path = DEFAULT_ROOT) -> None:
        self.root = Path(root)

    def weights_path(self, symbol: str) -> Path:
        return self.root / "weights" / f"{validate_symbol(symbol)}.keras"

    def metadata_path(self, symbol: str) -> Path:
        return self.root / "metadata" / f"{validate_symbol(symbol)}.json"

    def metrics_path(self, symbol: str) -> Path:
        return self.root / "metrics" / f"{validate_symbol(symbol)}.json"

    def checkpoint_dir(self, symbol: str) -> Path:
        return self.root / "checkpoints" / validate_symbol(symbol)

    def run_path(self, run_id: str) -> Path:
        return self.root / "runs" / f"{run_id}.json"

    def remove_stale_temp_files(self, older_than_s: float = STALE_TEMP_S) -> list[Path]:
        """Delete the temporary files of atomic writes that a crash left behind (none is
        ever read: only their renamed result is). Recent ones may belong to a writer at
        work and are kept."""
        cutoff = time.time() - older_than_s
        stale = [
            path
            for path in self.root.rglob(".*.tmp")
            if path.is_file() and path.stat().st_mtime < cutoff
        ]
        for path in stale:
            path.unlink(missing_ok=True)
        if stale:
            logger.info(
                "removed %d temporary file(s) left by a crash under %s", len(stale), self.root
            )
        return stale

    @property
    def backtest_path(self) -> Path:
        return self.root / "backtest.json"

    def save_backtest(self, figures: dict[str, Any]) -> Path:
        """Publish a backtest's per-symbol figures of this family (see ``docs/EVALUATION.md``)."""
        return atomic_write_json(self.backtest_path, figures)

    def load_backtest(self) -> dict[str, Any] | None:
        """The published backtest figures, or ``None`` when no backtest was published or the
        file is unreadable (logged: a broken file only hides the figures)."""
        try:
            return json.loads(self.backtest_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            logger.warning("ignoring unreadable %s: %s", self.backtest_path, error)
            return None

    def save(
        self,
        symbol: str,
        model_bytes: bytes,
        metadata: dict[str, Any],
        metrics: dict[str, Any],
    ) -> dict[str, Any]:
        """Persist one trained model; returns the metadata as written.

        Weights are renamed into place first and the metadata second; readers
        check the hash, so the metadata rename is the commit point.
        """
        metadata = {**metadata, "weights_sha256": sha256_hex(model_bytes)}
        atomic_write_bytes(self.weights_path(symbol), model_bytes)
        atomic_write_json(self.metadata_path(symbol), metadata)
        atomic_write_json(self.metrics_path(symbol), metrics)
        logger.info("saved model for %s (version %s)", symbol, metadata.get("version"))
        return metadata

    def save_run(self, run_id: str, summary: dict[str, Any]) -> Path:
        return atomic_write_json(self.run_path(run_id), summary)

    def has_model(self, symbol: str) -> bool:
        return self.weights_path(symbol).is_file() and self.metadata_path(symbol).is_file()

    def symbols(self) -> list[str]:
        """Symbols with both weights and metadata, sorted."""
        metadata_dir = self.root / "metadata"
        if not metadata_dir.is_dir():
            return []
        names = (path.stem for path in metadata_dir.glob("*.json"))
        return sorted(name for name in names if (self.root / "weights" / f"{name}.keras").is_file())

    def fingerprint(self, symbol: str) -> tuple[int, ...]:
        """Cheap change detector: inode and mtime of the metadata and weights files.

        Every save renames a new file into place, so the inode changes even when two
        saves land within the filesystem's timestamp resolution.
        """
        try:
            metadata, weights = (
                self.metadata_path(symbol).stat(),
                self.weights_path(symbol).stat(),
            )
            return (metadata.st_ino, metadata.st_mtime_ns, weights.st_ino, weights.st_mtime_ns)
        except FileNotFoundError as error:
            raise self._not_found(symbol) from error

    def load_metadata(self, symbol: str) -> dict[str, Any]:
        return self._read_json(self.metadata_path(symbol), symbol)

    def load_metrics(self, symbol: str) -> dict[str, Any]:
        return self._read_json(self.metrics_path(symbol), symbol)

    def load_artifacts(self, symbol: str, retries: int = 3) -> ModelArtifacts:
        """Read a matching (weights, metadata) pair, retrying while a save is in flight."""
        for attempt in range(retries):
            fingerprint = self.fingerprint(symbol)
            metadata = self.load_metadata(symbol)
            model_bytes = self.weights_path(symbol).read_bytes()
            if sha256_hex(model_bytes) == metadata.get("weights_sha256"):
                return ModelArtifacts(validate_symbol(symbol), model_bytes, metadata, fingerprint)
            logger.warning("weights/metadata of %s disagree (attempt %d)", symbol, attempt + 1)
            time.sleep(0.05 * (attempt + 1))
        raise ArtifactMismatchError(
            f"The weights of {symbol} do not match its metadata (a save may have been "
            f"interrupted). Retrain it: python scripts/train_mamba_models.py --symbols {symbol}"
        )

    def _read_json(self, path: Path, symbol: str) -> dict[str, Any]:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as error:
            raise self._not_found(symbol) from error
        except (ValueError, OSError) as error:  # JSONDecodeError and UnicodeDecodeError
            raise self.corrupt(symbol, path, error) from error
        if not isinstance(data, dict):
            raise self.corrupt(symbol, path, TypeError(f"a JSON {type(data).__name__}"))
        return data

    def corrupt(self, symbol: str, path: Path, error: BaseException) -> CorruptArtifactError:
        """The error for an unreadable model file of ``symbol``."""
        return CorruptArtifactError(
            f"{symbol}: {path} cannot be read ({type(error).__name__}: {error}). Retrain it: "
            f"python scripts/train_mamba_models.py --symbols {symbol} --models-dir {self.root}"
        )

    def _not_found(self, symbol: str) -> ModelNotFoundError:
        return ModelNotFoundError(
            f"No trained model for {symbol!r} under {self.root}. Train it with: "
            f"python scripts/train_mamba_models.py --symbols {symbol} --models-dir {self.root}"
        )
