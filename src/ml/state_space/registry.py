"""The artefact store: one directory tree per model family, every write atomic.

Layout under ``root`` (default ``models/mamba``)::

    versions/<SYMBOL>/<VERSION>/    one immutable model version:
        model.keras                 the trained Keras model (model.lgbm.json: LightGBM's trees)
        metadata.json               the model card: config, features, normaliser, data, hash
        metrics.json                learning curves and held-out test metrics
    current/<SYMBOL>                the symbol's current version (one line): the pointer
    checkpoints/<SYMBOL>/           a fit's best-epoch and resume state (engine.loop.FitState)
    runs/<RUN_ID>.json              one summary per training run
    shared/                         a family-wide model, not one symbol's (the universe
                                    network: ``ModelRegistry.shared``), in the same layout
    backtest.json                   walk-forward figures of this family, per symbol and horizon

A save writes a new version directory that nothing reads yet, then replaces the pointer
with one rename: that rename is the only commit point, so a crash at any moment leaves
the old version or the new one current, never neither, and never modifies a version
(as TF Serving's version directories). Readers resolve the pointer once per load and
check the weights' SHA-256 against the metadata. The last ``keep_versions`` versions
are kept for :meth:`ModelRegistry.rollback`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ml.state_space.atomic import atomic_write_bytes, atomic_write_json
from ml.state_space.data.symbols import validate_symbol

logger = logging.getLogger(__name__)

DEFAULT_ROOT = Path("models") / "mamba"


STALE_TEMP_S = 3600.0  # a temporary file this old has no writer left
KEEP_VERSIONS = 3  # versions kept per symbol, the current one included
MODEL_FILE, METADATA_FILE, METRICS_FILE = "model.keras", "metadata.json", "metrics.json"
FAMILY_MODEL_FILES = {"lgbm": "model.lgbm.json"}  # a family's model file if not MODEL_FILE
SHARED_NAME = "UNIVERSE"  # the name the shared registry stores its one model under
VERSION_PATTERN = re.compile(r"[0-9A-Za-z][0-9A-Za-z._-]{0,63}")


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

    def __init__(
        self,
        root: str | Path = DEFAULT_ROOT,
        keep_versions: int = KEEP_VERSIONS,
        backtest_path: Path | None = None,
    ) -> None:
        """``backtest_path``: the family's published backtest, if not ``root``'s."""
        if keep_versions < 1:
            raise ValueError(f"keep_versions={keep_versions} must be >= 1")
        self.root = Path(root)
        self.keep_versions = keep_versions
        self._backtest_path = backtest_path or self.root / "backtest.json"

    # --- versions ------------------------------------------------------------------------

    def pointer_path(self, symbol: str) -> Path:
        return self.root / "current" / validate_symbol(symbol)

    def version_dir(self, symbol: str, version: str) -> Path:
        if not VERSION_PATTERN.fullmatch(version):
            raise ValueError(f"invalid model version {version!r}")
        return self.root / "versions" / validate_symbol(symbol) / version

    def current_version(self, symbol: str) -> str:
        """The version the pointer names; :class:`ModelNotFoundError` without one."""
        path = self.pointer_path(symbol)
        try:
            version = path.read_text(encoding="utf-8").strip()
        except FileNotFoundError as error:
            raise self._not_found(symbol) from error
        except (OSError, ValueError) as error:
            raise self.corrupt(symbol, path, error) from error
        if not VERSION_PATTERN.fullmatch(version):
            raise self.corrupt(symbol, path, ValueError(f"names no version: {version!r}"))
        return version

    def versions(self, symbol: str) -> list[str]:
        """The symbol's complete versions, oldest first (names start with their time)."""
        directory = self.root / "versions" / validate_symbol(symbol)
        if not directory.is_dir():
            return []
        return sorted(
            path.name
            for path in directory.iterdir()
            if VERSION_PATTERN.fullmatch(path.name) and _complete(path)
        )

    def rollback(self, symbol: str, version: str | None = None) -> str:
        """Make ``version`` (default: the one before the current) current; returns it."""
        versions = self.versions(symbol)
        if version is None:
            older = [v for v in versions if v < self.current_version(symbol)]
            if not older:
                raise ModelNotFoundError(
                    f"{symbol} has no version older than {self.current_version(symbol)}; "
                    f"kept versions: {versions}"
                )
            version = older[-1]
        if version not in versions:
            raise ModelNotFoundError(f"{symbol} has no version {version!r}; kept: {versions}")
        self._point(symbol, version)
        logger.info("%s: version %s is current", symbol, version)
        return version

    def _point(self, symbol: str, version: str) -> None:
        atomic_write_bytes(self.pointer_path(symbol), f"{version}\n".encode())

    def _prune(self, symbol: str) -> None:
        """Delete the oldest versions beyond ``keep_versions``, never the current one."""
        current = self.current_version(symbol)
        old = [v for v in self.versions(symbol) if v != current]
        for version in old[: max(0, len(old) - (self.keep_versions - 1))]:
            shutil.rmtree(self.version_dir(symbol, version), ignore_errors=True)
            logger.info("%s: removed old version %s", symbol, version)

    # --- paths ---------------------------------------------------------------------------

    def weights_path(self, symbol: str, version: str | None = None) -> Path:
        return _model_path(self._version_path(symbol, version))

    def metadata_path(self, symbol: str, version: str | None = None) -> Path:
        return self._version_path(symbol, version) / METADATA_FILE

    def metrics_path(self, symbol: str, version: str | None = None) -> Path:
        return self._version_path(symbol, version) / METRICS_FILE

    def _version_path(self, symbol: str, version: str | None) -> Path:
        symbol = validate_symbol(symbol)
        return self.version_dir(symbol, version or self.current_version(symbol))

    def shared(self) -> ModelRegistry:
        """The registry of this family's shared model (one that forecasts any symbol),
        under ``shared/`` in the same layout, as :data:`SHARED_NAME`; the family's
        published backtest is this registry's."""
        return ModelRegistry(self.root / "shared", self.keep_versions, self.backtest_path)

    def checkpoint_dir(self, symbol: str) -> Path:
        return self.root / "checkpoints" / validate_symbol(symbol)

    def run_path(self, run_id: str) -> Path:
        return self.root / "runs" / f"{run_id}.json"

    def remove_stale_temp_files(self, older_than_s: float = STALE_TEMP_S) -> list[Path]:
        """Delete the temporary files of atomic writes and the incomplete version
        directories that a crash left behind (none is ever read). Recent ones may belong
        to a writer at work and are kept."""
        cutoff = time.time() - older_than_s
        stale = [
            path
            for path in self.root.rglob(".*.tmp")
            if path.is_file() and path.stat().st_mtime < cutoff
        ]
        stale += [
            directory
            for directory in self.root.glob("versions/*/*")
            if directory.is_dir()
            and not _complete(directory)
            and directory.stat().st_mtime < cutoff
        ]
        for path in stale:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        if stale:
            logger.info(
                "removed %d temporary file(s) or version(s) left by a crash under %s",
                len(stale),
                self.root,
            )
        return stale

    @property
    def backtest_path(self) -> Path:
        return self._backtest_path

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
        """Persist one trained model as a new version and make it current; returns the
        metadata as written (``version`` is the version directory's name)."""
        symbol = validate_symbol(symbol)
        version = self._new_version(symbol, metadata.get("version"))
        metadata = {**metadata, "version": version, "weights_sha256": sha256_hex(model_bytes)}
        directory = self.version_dir(symbol, version)
        model_file = FAMILY_MODEL_FILES.get(metadata.get("family", ""), MODEL_FILE)
        atomic_write_bytes(directory / model_file, model_bytes)
        atomic_write_json(directory / METRICS_FILE, metrics)
        atomic_write_json(directory / METADATA_FILE, metadata)  # last: the version is complete
        self._point(symbol, version)  # the commit point
        logger.info("saved model for %s (version %s)", symbol, version)
        self._prune(symbol)
        return metadata

    def _new_version(self, symbol: str, wanted: str | None) -> str:
        """``wanted`` (the card's version) if it names no existing directory, else a fresh
        time-ordered name: a version directory is never written twice."""
        base = wanted if wanted and VERSION_PATTERN.fullmatch(wanted) else None
        base = base or f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
        version, n = base, 1
        while self.version_dir(symbol, version).exists():
            n += 1
            version = f"{base}.{n}"
        return version

    def save_run(self, run_id: str, summary: dict[str, Any]) -> Path:
        return atomic_write_json(self.run_path(run_id), summary)

    def has_model(self, symbol: str) -> bool:
        """Whether the symbol's pointer names a complete version."""
        try:
            return _complete(self._version_path(symbol, None))
        except (ModelNotFoundError, CorruptArtifactError):
            return False

    def symbols(self) -> list[str]:
        """Symbols whose current version is complete, sorted."""
        pointers = self.root / "current"
        if not pointers.is_dir():
            return []
        names = (p.name for p in pointers.iterdir() if not p.name.startswith("."))
        return sorted(name for name in names if self.has_model(name))

    def fingerprint(self, symbol: str) -> tuple[int, ...]:
        """Cheap change detector: inode and mtime of the pointer and of the current
        version's metadata, weights and metrics (0 for missing metrics). A new version or a
        rollback replaces the pointer, so its inode changes even within the filesystem's
        timestamp resolution. One pointer read and four ``stat`` calls."""
        return self._resolve(symbol)[1]

    def _resolve(self, symbol: str) -> tuple[str, tuple[int, ...]]:
        """The current version and its fingerprint, from one read of the pointer."""
        version = self.current_version(symbol)
        try:
            pointer = self.pointer_path(symbol).stat()
            metadata = self.metadata_path(symbol, version).stat()
            weights = self.weights_path(symbol, version).stat()
        except FileNotFoundError as error:
            raise self._not_found(symbol) from error
        try:
            metrics = self.metrics_path(symbol, version).stat().st_mtime_ns
        except FileNotFoundError:
            metrics = 0
        stats = (pointer, metadata, weights)
        return version, (*(v for st in stats for v in (st.st_ino, st.st_mtime_ns)), metrics)

    def adopt_legacy_layout(self) -> list[str]:
        """Move models of the old flat layout (``weights/``, ``metadata/``, ``metrics/``)
        into versions, each made current; returns their symbols."""
        adopted = []
        for weights in sorted((self.root / "weights").glob("*.keras")):
            symbol = weights.stem
            metadata_file = self.root / "metadata" / f"{symbol}.json"
            if not metadata_file.is_file() or self.has_model(symbol):
                continue
            metadata = self._read_json(metadata_file, symbol)
            version = self._new_version(symbol, metadata.get("version"))
            directory = self.version_dir(symbol, version)
            directory.mkdir(parents=True)
            metrics_file = self.root / "metrics" / f"{symbol}.json"
            if metrics_file.is_file():
                os.replace(metrics_file, directory / METRICS_FILE)
            os.replace(weights, directory / MODEL_FILE)
            atomic_write_json(directory / METADATA_FILE, {**metadata, "version": version})
            metadata_file.unlink()
            self._point(symbol, version)
            adopted.append(symbol)
        if adopted:
            logger.info("moved %d model(s) of the old layout into versions/", len(adopted))
        return adopted

    def load_metadata(self, symbol: str) -> dict[str, Any]:
        return self._read_json(self.metadata_path(symbol), symbol)

    def load_metrics(self, symbol: str) -> dict[str, Any]:
        return self._read_json(self.metrics_path(symbol), symbol)

    def load_artifacts(self, symbol: str) -> ModelArtifacts:
        """Read the current version's (weights, metadata), resolving the pointer once."""
        version, fingerprint = self._resolve(symbol)
        metadata = self._read_json(self.metadata_path(symbol, version), symbol)
        try:
            model_bytes = self.weights_path(symbol, version).read_bytes()
        except FileNotFoundError as error:
            raise self._not_found(symbol) from error
        if sha256_hex(model_bytes) != metadata.get("weights_sha256"):
            raise ArtifactMismatchError(
                f"The weights of {symbol} version {version} do not match its metadata (the "
                f"file was changed after it was saved). {self._remedy(symbol)}"
            )
        return ModelArtifacts(validate_symbol(symbol), model_bytes, metadata, fingerprint)

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
            f"{symbol}: {path} cannot be read ({type(error).__name__}: {error}). "
            f"{self._remedy(symbol)}"
        )

    def _remedy(self, symbol: str) -> str:
        """How to get a loadable model of ``symbol`` back."""
        return (
            f"Roll back to the previous version: python scripts/model_versions.py "
            f"--models-dir {self.root} rollback {symbol}, or retrain it: python scripts/"
            f"train_mamba_models.py --symbols {symbol} --models-dir {self.root}"
        )

    def _not_found(self, symbol: str) -> ModelNotFoundError:
        return ModelNotFoundError(
            f"No trained model for {symbol!r} under {self.root}. Train it with: "
            f"python scripts/train_mamba_models.py --symbols {symbol} --models-dir {self.root}"
        )


def _complete(version_dir: Path) -> bool:
    """A version is complete once its metadata, written last, exists."""
    return (version_dir / METADATA_FILE).is_file() and _model_path(version_dir).is_file()


def _model_path(version_dir: Path) -> Path:
    """The version's model file: ``model.keras`` or its family's (``FAMILY_MODEL_FILES``)."""
    for name in FAMILY_MODEL_FILES.values():
        if (version_dir / name).is_file():
            return version_dir / name
    return version_dir / MODEL_FILE
