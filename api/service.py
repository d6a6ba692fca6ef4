"""What a prediction request does, independent of HTTP: model + history -> forecast.

Everything here is synchronous and blocking (file reads, TensorFlow); routes call it
through the threadpool. Three caches keep the hot path short:

- models: :class:`~api.model_cache.ModelCache` (LRU, reloads when the files change);
- price history: per symbol for ``history_ttl_s`` (the data layer re-reads the parquet
  cache or bundled CSV on every call, and may go to Yahoo);
- forecasts: a forecast is a pure function of (model version, price history), so it is
  reused until either changes; with ``history_ttl_s=0`` every request recomputes it.

A symbol without a model of its own is forecast by the family's universe network, where
the models directory has one (``shared/``, ``scripts/train_universe_model.py``): gated on
the symbol's own history and marked ``unseen``.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from api.metrics import ApiMetrics
from api.model_cache import Fingerprint, LoadedModel, ModelCache
from api.schemas import ForecastResponse, PriceHistory
from api.settings import Settings
from ml.state_space.data.prices_file import read_prices_file
from ml.state_space.data.sources import load_history
from ml.state_space.data.symbols import validate_symbol
from ml.state_space.forecast import UniverseNetwork
from ml.state_space.registry import SHARED_NAME, ModelNotFoundError, ModelRegistry

logger = logging.getLogger(__name__)

MAX_HISTORIES = 256


@dataclass(frozen=True)
class _History:
    frame: pd.DataFrame
    token: int  # unique per load: identifies this exact frame in forecast-cache keys
    expires: float


class HistoryCache:
    """Per-symbol price history reused for ``ttl_s`` seconds (bounded LRU, per-symbol lock)."""

    def __init__(
        self,
        ttl_s: float,
        offline: bool | None,
        cache_dir: Path | None,
        metrics: ApiMetrics,
        prices: Mapping[str, pd.DataFrame] | None = None,
    ) -> None:
        self.ttl_s = ttl_s
        self.offline = offline
        self.cache_dir = cache_dir
        self.prices = prices
        self.metrics = metrics
        self._entries: OrderedDict[str, _History] = OrderedDict()
        self._lock = threading.Lock()
        self._symbol_locks: dict[str, threading.Lock] = {}
        self._tokens = itertools.count(1)

    def get(self, symbol: str, rows: int) -> tuple[pd.DataFrame, int]:
        """At least the last ``rows`` rows of ``symbol``'s history, and the load's token.

        Raises ``DataUnavailableError`` (saying what was tried) when no source has it.
        """
        entry = self.peek(symbol, rows)
        self.metrics.cache_lookup("history", entry is not None)
        if entry is None:
            with self._lock:
                symbol_lock = self._symbol_locks.setdefault(symbol, threading.Lock())
            with symbol_lock:  # one loader per symbol; the others reuse its result
                entry = self.peek(symbol, rows) or self._load(symbol, rows)
        return entry.frame, entry.token

    def peek(self, symbol: str, rows: int) -> _History | None:
        """The cached history if still fresh and long enough, else ``None``; never loads."""
        with self._lock:
            entry = self._entries.get(symbol)
            if entry is None or entry.expires <= time.monotonic() or len(entry.frame) < rows:
                return None
            self._entries.move_to_end(symbol)
            return entry

    def _load(self, symbol: str, rows: int) -> _History:
        started = time.perf_counter()
        full = load_history(
            symbol, offline=self.offline, cache_dir=self.cache_dir, prices=self.prices
        )
        # keep a margin over `rows` so models with a longer window rarely force a reload
        frame = full.iloc[-max(2 * rows, 1024) :]
        frame.attrs = dict(full.attrs)
        entry = _History(frame, next(self._tokens), time.monotonic() + self.ttl_s)
        logger.debug(
            "loaded %d rows of %s from %s in %.1f ms",
            len(full),
            symbol,
            full.attrs.get("source"),
            1e3 * (time.perf_counter() - started),
        )
        if self.ttl_s > 0:
            with self._lock:
                self._entries[symbol] = entry
                self._entries.move_to_end(symbol)
                while len(self._entries) > MAX_HISTORIES:
                    self._entries.popitem(last=False)
        return entry


class PredictionService:
    """The service's state: registry, caches, readiness."""

    def __init__(self, settings: Settings, metrics: ApiMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.registry = ModelRegistry(settings.models_dir)
        self.models = ModelCache(
            self.registry, settings.model_cache_size, metrics, settings.unskilled_forecast
        )
        self.universe = ModelCache(
            self.registry.shared(),
            1,
            metrics,
            settings.unskilled_forecast,
            UniverseNetwork.from_artifacts,
        )
        prices = read_prices_file(settings.prices_file) if settings.prices_file else None
        self.history = HistoryCache(
            settings.history_ttl_s, settings.offline, settings.cache_dir, metrics, prices
        )
        self._forecasts: OrderedDict[str, tuple[tuple[Fingerprint, int], ForecastResponse]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()
        # features (GIL-bound pandas) + inference (TensorFlow already uses every core) are
        # CPU-bound: 16 at once on 2 cores doubled the CPU per forecast; callers queue here
        self._compute = threading.BoundedSemaphore(settings.compute_threads)
        self.ready = False

    def scan(self) -> list[str]:
        """List the models on disk (nothing is loaded) and mark the service ready."""
        try:
            self.registry.adopt_legacy_layout()
        except OSError as error:  # a read-only models dir: the old layout stays unserved
            logger.warning("cannot move old-layout models into versions/: %s", error)
        symbols = self.registry.symbols()
        logger.info("found %d model(s) under %s: %s", len(symbols), self.registry.root, symbols)
        self.ready = True
        return symbols

    def cached_forecast(self, symbol: str) -> ForecastResponse | None:
        """The stored forecast if model and history are unchanged, else ``None``.

        Never loads or computes (three ``stat`` calls and dict look-ups), so the route
        calls it on the event loop and only goes to the threadpool on a miss.
        """
        model = self._model(symbol, self.models.peek, self.universe.peek)
        if model is None:
            return None
        history = self.history.peek(symbol, model.forecaster.history_rows)
        if history is None:
            return None
        response = self._memo((model.fingerprint, history.token), symbol)
        if response is not None:
            for cache in ("model", "history", "forecast"):
                self.metrics.cache_lookup(cache, hit=True)
        return response

    def forecast(self, symbol: str) -> ForecastResponse:
        """Forecast from the symbol's latest history (404 before 503: model, then data)."""
        symbol = validate_symbol(symbol)
        model = self._model(symbol, self.models.get, self.universe.get)
        prices, token = self.history.get(symbol, model.forecaster.history_rows)
        key = (model.fingerprint, token)
        cached = self._memo(key, symbol)
        self.metrics.cache_lookup("forecast", cached is not None)
        if cached is not None:
            return cached
        response = self._predict(model, prices, symbol)
        with self._lock:
            self._forecasts[symbol] = (key, response)
            self._forecasts.move_to_end(symbol)
            while len(self._forecasts) > self.settings.model_cache_size:
                self._forecasts.popitem(last=False)
        return response

    def _memo(self, key: tuple[Fingerprint, int], symbol: str) -> ForecastResponse | None:
        with self._lock:
            cached = self._forecasts.get(symbol)
        return cached[1] if cached is not None and cached[0] == key else None

    def forecast_prices(self, symbol: str, history: PriceHistory) -> ForecastResponse:
        """Forecast from caller-supplied prices (validated by the request schema)."""
        symbol = validate_symbol(symbol)
        model = self._model(symbol, self.models.get, self.universe.get)
        return self._predict(model, history.to_frame(), symbol)

    def _model(
        self,
        symbol: str,
        own: Callable[[str], LoadedModel | None],
        universe: Callable[[str], LoadedModel | None],
    ) -> LoadedModel | None:
        """``own(symbol)``, the symbol's model, or where it has none and the directory
        holds a universe network, ``universe(SHARED_NAME)``; the symbol's
        ModelNotFoundError where neither exists."""
        try:
            return own(symbol)
        except ModelNotFoundError:
            if not self.universe.registry.has_model(SHARED_NAME):
                raise
            return universe(SHARED_NAME)

    def _predict(self, model: LoadedModel, prices: pd.DataFrame, symbol: str) -> ForecastResponse:
        with self._compute:
            return ForecastResponse.from_forecast(model.forecaster.predict(prices, symbol))
