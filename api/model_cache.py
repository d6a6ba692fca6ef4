"""A bounded LRU of loaded model versions that follows the registry on disk.

Every lookup compares the registry's cheap fingerprint (file mtimes) with the one the
cached version was loaded from, so a newly saved model is served on the next request
without a restart. Loading goes through :meth:`ModelRegistry.load_artifacts`, which
checks the weights' hash against the metadata, so weights and metadata (normaliser,
feature config) are always one version. A per-symbol lock makes concurrent first
requests load a model once.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras

from api.metrics import ApiMetrics
from ml.state_space.data.symbols import validate_symbol
from ml.state_space.forecast import ServedModel, UniverseNetwork, UnskilledPolicy
from ml.state_space.models.card import CardSchemaError
from ml.state_space.registry import (
    CorruptArtifactError,
    ModelArtifacts,
    ModelNotFoundError,
    ModelRegistry,
)

logger = logging.getLogger(__name__)

Fingerprint = tuple[int, ...]
Loaded = ServedModel | UniverseNetwork
Loader = Callable[[ModelArtifacts, dict[str, Any], dict[str, Any] | None, UnskilledPolicy], Loaded]
_KERAS_LOCK = threading.Lock()  # Keras deserialisation uses process-global state
# Every variable a load creates leaves a kernel in TensorFlow's eager kernel cache (~33 KB
# each, ~300 KB a Mamba network), never freed: every CLEAR_EVERY_LOADS loads the cache is
# cleared (keras.utils.clear_session), so reloads do not grow the service. A clear costs
# the next forecasts their kernels again (~150 ms once), so it is not done on every load
# (docs/PERFORMANCE.md, memory across model reloads). 0: never.
CLEAR_EVERY_LOADS = 16
_LOADS = itertools.count(1)


@dataclass(frozen=True)
class LoadedModel:
    """One model version in memory and the on-disk state it was loaded from."""

    symbol: str
    forecaster: Loaded
    fingerprint: Fingerprint


class ModelCache:
    """Thread-safe, size-bounded, reload-on-change cache of :class:`ServedModel` objects
    (or of what ``load`` makes of a version: the universe network's)."""

    def __init__(
        self,
        registry: ModelRegistry,
        max_size: int,
        metrics: ApiMetrics,
        unskilled: UnskilledPolicy = "blend",
        load: Loader = ServedModel.from_artifacts,
    ) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be >= 1, got {max_size!r}")
        self.registry = registry
        self.load = load
        self.unskilled = unskilled
        self.max_size = max_size
        self.metrics = metrics
        self._entries: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()  # guards _entries and _symbol_locks
        self._symbol_locks: dict[str, threading.Lock] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def fingerprint(self, symbol: str) -> Fingerprint:
        """Registry fingerprint (the current version's files, metrics included) plus the
        mtime of the published backtest (walk-forward figures).

        Raises :class:`ModelNotFoundError` when the symbol has no model.
        """
        return (*self.registry.fingerprint(symbol), _mtime(self.registry.backtest_path))

    def peek(self, symbol: str) -> LoadedModel | None:
        """The cached version if it is still the one on disk, else ``None``; never loads.

        Costs one small read and five ``stat`` calls, so it may run on the event loop.
        """
        return self._lookup(symbol, self.fingerprint(symbol))

    def get(self, symbol: str) -> LoadedModel:
        """The current model version of ``symbol``, loading it if absent or outdated."""
        symbol = validate_symbol(symbol)
        entry = self.peek(symbol)
        self.metrics.cache_lookup("model", entry is not None)
        if entry is not None:
            return entry
        with self._symbol_lock(symbol):
            entry = self._lookup(symbol, self.fingerprint(symbol))  # loaded while we waited?
            if entry is None:
                entry = self._load(symbol)
                self._store(entry)
            return entry

    def _lookup(self, symbol: str, fingerprint: Fingerprint) -> LoadedModel | None:
        with self._lock:
            entry = self._entries.get(symbol)
            if entry is None or entry.fingerprint != fingerprint:
                return None
            self._entries.move_to_end(symbol)
            return entry

    def _symbol_lock(self, symbol: str) -> threading.Lock:
        with self._lock:
            return self._symbol_locks.setdefault(symbol, threading.Lock())

    def _store(self, entry: LoadedModel) -> None:
        with self._lock:
            self._entries[entry.symbol] = entry
            self._entries.move_to_end(entry.symbol)
            while len(self._entries) > self.max_size:
                evicted, _ = self._entries.popitem(last=False)
                logger.info("evicted model %s (cache size %d)", evicted, self.max_size)
            self.metrics.models_loaded.set(len(self._entries))

    def _load(self, symbol: str) -> LoadedModel:
        started = time.perf_counter()
        try:
            fingerprint = self.fingerprint(symbol)  # read before the files: never newer than them
            artifacts = self.registry.load_artifacts(symbol)
            test_skill = self._test_skill(symbol, artifacts.metadata)
            with _KERAS_LOCK:
                forecaster = self._served(artifacts, test_skill)
                if CLEAR_EVERY_LOADS and next(_LOADS) % CLEAR_EVERY_LOADS == 0:
                    keras.utils.clear_session(free_memory=False)
        except Exception:
            self.metrics.model_loads.labels("error").inc()
            raise
        seconds = time.perf_counter() - started
        self.metrics.model_loads.labels("ok").inc()
        self.metrics.model_load_seconds.observe(seconds)
        logger.info(
            "loaded %s version %s in %.2f s", symbol, artifacts.metadata.get("version"), seconds
        )
        return LoadedModel(symbol, forecaster, fingerprint)

    def _served(self, artifacts: ModelArtifacts, test_skill: dict[str, Any]) -> Loaded:
        """The servable model; weights or a card that cannot be rebuilt are a clear 503."""
        symbol = artifacts.symbol
        try:
            return self.load(artifacts, test_skill, self.registry.load_backtest(), self.unskilled)
        except CardSchemaError:
            raise
        except Exception as error:  # a corrupt .keras file: zip, HDF5, Keras or TF errors
            raise self.registry.corrupt(
                symbol, self.registry.weights_path(symbol), error
            ) from error

    def _test_skill(self, symbol: str, metadata: dict[str, Any]) -> dict[str, Any]:
        """Per-horizon test metrics of this very version ({} if absent, unreadable or from
        another one)."""
        try:
            metrics = self.registry.load_metrics(symbol)
        except ModelNotFoundError:
            logger.warning("%s has no metrics file; serving without test skill", symbol)
            return {}
        except CorruptArtifactError as error:
            logger.warning("%s; serving without test skill", error)
            return {}
        if metrics.get("version") != metadata.get("version"):
            logger.warning(
                "%s metrics are for version %s, the model is %s; skill withheld until they match",
                symbol,
                metrics.get("version"),
                metadata.get("version"),
            )
            return {}
        return metrics.get("test", {})


def _mtime(path: Path) -> int:
    try:
        return path.stat().st_mtime_ns
    except FileNotFoundError:
        return 0
