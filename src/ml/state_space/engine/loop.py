"""The fit loop of one network: shuffled augmented batches, Keras callbacks, epoch log.

Early stopping, learning-rate decay and the best-epoch checkpoint all watch the
validation block only; the test years never reach this module.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np

from ml.state_space.atomic import atomic_write, atomic_write_json
from ml.state_space.features.augment import DataAugmentor

logger = logging.getLogger(__name__)

EpochCallback = Callable[[str, dict[str, Any]], None]
Segment = tuple[np.ndarray, np.ndarray]  # one series' windows (N, L, F) and targets (N, ...)
VALIDATION_BATCH = 128  # a validation block at ten supervised steps is ~100 windows
STATE_DIR, LATEST_FILE, BEST_FILE = "state", "latest.npz", "best.npz"


class FitSettings(Protocol):
    """What the loop reads of a fit's configuration (``models.config.TrainingConfig``)."""

    epochs: int
    batch_size: int
    early_stopping_patience: int
    lr_patience: int
    lr_factor: float
    min_lr: float
    augment: bool
    seed: int
    windows_per_epoch: int | None

    @property
    def output_steps(self) -> int: ...


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


def fit_network(
    network: keras.Model,
    train: Sequence[Segment],
    validation: Segment,
    config: FitSettings,
    work_dir: Path,
    name: str,
    on_epoch: EpochCallback | None = None,
) -> tuple[list[dict[str, Any]], str]:
    """Train a compiled ``network`` on the ``train`` segments (one per series, targets
    divided by the target scale), early-stopped on the ``validation`` windows and their
    targets (at the supervised steps: :func:`at_steps`).

    Restores the best validation epoch's weights. ``work_dir`` holds the checkpoint and
    the resume state, so a killed fit continues from its last epoch. Returns the epoch
    log and the stop reason (``early_stopping`` or ``max_epochs``).
    """
    train_batches = training_batches(train, config)
    epoch_log = EpochLog(name, work_dir / "history.json", on_epoch)
    state = FitState(work_dir / STATE_DIR, best_val_loss=epoch_log.best_val_loss())
    callbacks = [
        ValidationLoss(*validation),  # first: the others read it
        state,  # before ReduceLROnPlateau: a resumed epoch runs at the rate it first ran at
        keras.callbacks.TerminateOnNaN(),
        keras.callbacks.EarlyStopping(patience=config.early_stopping_patience),
        keras.callbacks.ReduceLROnPlateau(
            factor=config.lr_factor, patience=config.lr_patience, min_lr=config.min_lr
        ),
        epoch_log,
    ]
    run_epochs(network, train_batches, config.epochs, callbacks)
    history = epoch_log.epochs
    if not history or not np.isfinite(history[-1]["loss"]):
        raise TrainingDivergedError(
            f"Training of {name} diverged (loss is NaN/inf at epoch {len(history)}). "
            "Try a lower --learning-rate or check the data-quality warnings."
        )
    state.restore_best()
    stop_reason = "early_stopping" if len(history) < config.epochs else "max_epochs"
    return history, stop_reason


@contextlib.contextmanager
def scratch_dir(work_dir: str | Path | None, prefix: str) -> Iterator[Path]:
    """A fit's scratch directory: ``work_dir`` (created if missing, kept afterwards), or
    a temporary directory removed when the fit ends."""
    if work_dir is not None:
        path = Path(work_dir)
        path.mkdir(parents=True, exist_ok=True)
        yield path
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as temporary:
        yield Path(temporary)


def has_unfinished_fit(work_dir: Path) -> bool:
    """Whether ``work_dir`` holds the scratch state of a fit whose model was never saved:
    the directory lives from a fit's start until its model is committed (the training
    run, :class:`~ml.state_space.orchestration.run.TrainingRun`, removes it then)."""
    return work_dir.is_dir()


def reset_work_dir(work_dir: Path, symbol: str, resume: bool) -> None:
    """Prepare ``work_dir`` for a fit: empty, or with ``resume`` holding the readable
    state of an interrupted fit so it continues from its last epoch.

    State that cannot be read (a kill while it was written leaves a truncated file, and
    every later resume would fail on it) is discarded with a warning, and so is scratch
    state without a backup (a fit that finished but whose model was never saved): stale
    checkpoints must not seed a new fit. That symbol starts from epoch 1.
    """
    if resume and (work_dir / STATE_DIR / LATEST_FILE).is_file():
        files = [p for p in (work_dir / STATE_DIR).iterdir() if p.is_file()]
        files += [p for p in (work_dir / "history.json",) if p.exists()]
        broken = [p for p in files if not _readable(p)]
        if not broken:
            return
        logger.warning(
            "%s: resume state %s is unreadable (damaged on disk?); training from the first epoch",
            symbol,
            ", ".join(str(p) for p in broken),
        )
    shutil.rmtree(work_dir, ignore_errors=True)


def _readable(path: Path) -> bool:
    if path.suffix == ".npz":
        try:
            with np.load(path) as arrays:
                [arrays[name] for name in arrays.files]  # reads (and CRC-checks) every array
        except (OSError, ValueError, zipfile.BadZipFile):
            return False
    if path.suffix == ".json":
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            return False
    return True


def refit_network(
    network: keras.Model,
    train: Sequence[Segment],
    config: FitSettings,
    learning_rates: Sequence[float],
    name: str,
) -> None:
    """Train a compiled ``network`` on the ``train`` segments for one epoch per learning
    rate, the rates an early-stopped fit used: no validation, so the most recent years
    are learnt."""
    batches = training_batches(train, config)
    schedule = keras.callbacks.LearningRateScheduler(lambda epoch, _: float(learning_rates[epoch]))
    history = run_epochs(
        network, batches, len(learning_rates), [schedule, keras.callbacks.TerminateOnNaN()]
    )
    losses = [epoch["loss"] for epoch in history]
    if len(losses) < len(learning_rates) or not np.isfinite(losses[-1]):
        raise TrainingDivergedError(
            f"Refit of {name} diverged (loss is NaN/inf at epoch {len(losses)})."
        )
    windows = sum(len(x) for x, _ in train)
    logger.info("%s refitted on %d windows for %d epochs", name, windows, len(losses))


def best_epoch(history: list[dict[str, Any]]) -> int | None:
    """The epoch with the lowest finite validation loss."""
    scored = [e for e in history if e.get("val_loss") is not None and np.isfinite(e["val_loss"])]
    return min(scored, key=lambda e: e["val_loss"])["epoch"] if scored else None


def training_batches(train: Sequence[Segment], config: FitSettings) -> TrainingBatches:
    """The fit's (or refit's) batches of the ``train`` segments, as ``config`` says."""
    return TrainingBatches(
        train,
        config.batch_size,
        DataAugmentor(seed=config.seed) if config.augment else None,
        seed=config.seed,
        supervised_steps=config.output_steps,
        max_windows=config.windows_per_epoch,
    )


def run_epochs(
    network: keras.Model,
    batches: TrainingBatches,
    epochs: int,
    callbacks: Sequence[keras.callbacks.Callback],
) -> list[dict[str, float]]:
    """Keras's ``fit`` loop over ``batches`` through ``train_on_batch``: the same steps in
    the same order, the same callback calls, and epoch logs that average the batches'.

    ``fit`` wraps a ``PyDataset`` in a ``tf.data`` pipeline (a generator thread and a
    prefetch buffer) built anew every epoch: on the one core a worker has, its epochs of
    a dozen batches took 1.5x as long, the core busy 71% of the time
    (``scripts/bench_fit_loop.py``, docs/PERFORMANCE.md). As in ``fit``, a callback that
    sets ``model._initial_epoch`` when training begins (a resume) skips the epochs
    already run. Returns the epochs' logs.
    """
    hooks = keras.callbacks.CallbackList(
        list(callbacks), model=network, epochs=epochs, steps=len(batches), verbose=0
    )
    network.stop_training = False
    # Keras's fit reads two batches to learn their signature, then starts the epoch
    # anew: its first epoch trains on the second draw, and so does this loop's
    batches.on_epoch_end()
    hooks.on_train_begin()
    history: list[dict[str, float]] = []
    for epoch in range(network._initial_epoch or 0, epochs):
        hooks.on_epoch_begin(epoch)
        totals: dict[str, float] = {}
        for step in range(len(batches)):
            hooks.on_train_batch_begin(step)
            logs = network.train_on_batch(*batches[step], return_dict=True)
            hooks.on_train_batch_end(step, logs)
            for name, value in logs.items():
                totals[name] = totals.get(name, 0.0) + float(value)
        batches.on_epoch_end()
        epoch_logs = {name: total / len(batches) for name, total in totals.items()}
        hooks.on_epoch_end(epoch, epoch_logs)
        history.append(epoch_logs)
        if network.stop_training:
            break
    hooks.on_train_end(history[-1] if history else None)
    return history


class TrainingBatches:
    """Shuffled training batches, freshly augmented every epoch (seeded, reproducible).

    Each segment ``(x, y)`` holds one series' windows (N, L, F) and targets (N, H), window
    ``i + 1`` ending one row after window ``i`` (stride 1); several segments (a network
    trained on many series) are shuffled together. With ``supervised_steps`` K > 1 an
    epoch uses every K-th window of each segment, each with the targets of its last K
    steps, (K, H): every origin is a target once per epoch at a fraction of the cost, and
    the phase of the chosen windows is drawn anew each epoch, so an origin is seen at
    varying depths.

    With ``max_windows`` an epoch is a random draw of that many of those windows (fewer
    if there are fewer), gathered batch by batch from the segments, which may be views:
    a universe's million windows are never copied, an epoch costs the same whatever the
    universe's size, and validation runs after every ``max_windows`` windows.
    """

    def __init__(
        self,
        segments: Sequence[Segment],
        batch_size: int,
        augmentor: DataAugmentor | None,
        seed: int,
        supervised_steps: int = 1,
        max_windows: int | None = None,
    ) -> None:
        if not segments or any(not 1 <= supervised_steps <= len(x) for x, _ in segments):
            raise ValueError(f"supervised_steps={supervised_steps} needs as many windows")
        if max_windows is not None and max_windows < batch_size:
            raise ValueError(f"max_windows={max_windows} holds no batch of {batch_size}")
        self.segments, self.batch_size, self.augmentor = list(segments), batch_size, augmentor
        self.steps = supervised_steps
        # windows of every phase, per segment
        self.n_windows = sum((len(x) - self.steps + 1) // self.steps for x, _ in segments)
        self.max_windows = max_windows
        self._rng = np.random.default_rng(seed)
        self.on_epoch_end()

    @property
    def sampled(self) -> bool:
        """Whether an epoch is a draw of ``max_windows`` windows, gathered batch by batch."""
        return self.max_windows is not None and self.max_windows < self.n_windows

    def __len__(self) -> int:
        """Full batches only: a ragged last batch would be a new shape for the compiled step
        (the shuffle changes which windows sit out, every epoch)."""
        windows = min(self.n_windows, self.max_windows or self.n_windows)
        return max(windows // self.batch_size, 1)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        if not self.sampled:
            return self._epoch_x[rows], self._epoch_y[rows]  # (b, L, F), (b, H) or (b, K, H)
        segment, end = self._segment[rows], self._end[rows]
        x = np.empty((len(rows), *self.segments[0][0].shape[1:]), np.float32)
        targets = self.segments[0][1].shape[1:]  # (H,): a window's targets, (K, H) at K steps
        y = np.empty((len(rows), *(targets if self.steps == 1 else (self.steps, *targets))), "f4")
        for s in np.unique(segment):
            chosen = segment == s
            x[chosen], y[chosen] = self._windows(s, end[chosen])
        return (self.augmentor.augment(x) if self.augmentor else x), y

    def on_epoch_end(self) -> None:
        ends = [self._epoch_ends(len(x)) for x, _ in self.segments]
        self._order = self._rng.permutation(self.n_windows)
        if self.sampled:
            self._order = self._order[: self.max_windows]
            ends = [np.arange(len(x))[e] for (x, _), e in zip(self.segments, ends, strict=True)]
            self._segment = np.repeat(np.arange(len(ends)), [len(e) for e in ends])
            self._end = np.concatenate(ends)
            return
        inputs, targets = zip(*(self._windows(s, e) for s, e in enumerate(ends)), strict=True)
        x = inputs[0] if len(inputs) == 1 else np.concatenate(inputs)
        self._epoch_x = self.augmentor.augment(x) if self.augmentor else x
        self._epoch_y = targets[0] if len(targets) == 1 else np.concatenate(targets)

    def _epoch_ends(self, n: int) -> np.ndarray | slice:
        """The windows of a segment of ``n`` this epoch uses: all, or with K > 1 every K-th
        from this epoch's phase on."""
        if self.steps == 1:
            return slice(None)
        first = self.steps - 1 + self._rng.integers(self.steps)  # this epoch's phase
        count = (n - self.steps + 1) // self.steps
        return np.arange(first, first + count * self.steps, self.steps)

    def _windows(self, segment: int, ends: np.ndarray | slice) -> Segment:
        """Windows ``ends`` of one segment and their targets, (n, H) or with K > 1 the
        targets of their last K steps, (n, K, H)."""
        x, y = self.segments[segment]
        if self.steps == 1:
            return x[ends], y[ends]
        return x[ends], y[ends[:, None] + np.arange(1 - self.steps, 1)]


class ValidationLoss(keras.callbacks.Callback):
    """``val_loss`` and ``val_median_mae`` at the end of each epoch, from forward passes on
    fixed-size zero-padded batches: every fit of a network of one shape reuses the same
    compiled predict step, whatever the size of its validation block.

    Targets ``y`` (n, K, H) score a network supervised at K steps at all of them, as it is
    trained (:func:`at_steps`); targets (n, H) score its last step only."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int = VALIDATION_BATCH) -> None:
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is None or len(self.x) == 0:
            return
        predicted = padded_predict(self.model, self.x, self.batch_size)  # (n, [K,] H, Q)
        if predicted.ndim == self.y.ndim + 2:  # a several-step network scored at its last
            predicted = predicted[:, -1]  # (n, H, Q)
        logs["val_loss"] = float(keras.ops.convert_to_numpy(self.model.loss(self.y, predicted)))
        median = self.model.loss.median_index
        logs["val_median_mae"] = float(np.mean(np.abs(self.y - predicted[..., median])))


def at_steps(x: np.ndarray, y: np.ndarray, steps: int) -> Segment:
    """Windows (N, L, F) and targets (N, H) of one series (window ``i + 1`` ending a row
    after window ``i``) as a network supervised at its last ``steps`` K is scored: the
    last window and every K-th before it, each with the targets of its last K origins
    (n, K, H), so every origin but the first K - 1 is scored once, at a tenth of the
    forward passes for K = 10. Fewer than K windows (or K = 1) stay as they are."""
    if steps == 1 or len(x) < steps:
        return x, y
    ends = np.arange(len(x) - 1, steps - 2, -steps)[::-1]
    return x[ends], y[ends[:, None] + np.arange(1 - steps, 1)]


def padded_predict(network: keras.Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """``network(x)`` in batches of exactly ``batch_size`` rows (the last one zero-padded)."""
    out = []
    for begin in range(0, len(x), batch_size):
        batch = x[begin : begin + batch_size]
        padded = np.zeros((batch_size, *x.shape[1:]), dtype=np.float32)
        padded[: len(batch)] = batch
        out.append(np.asarray(network.predict_on_batch(padded))[: len(batch)])
    return np.concatenate(out)


class FitState(keras.callbacks.Callback):
    """A fit's crash-safe state under ``directory``, so that a killed fit resumes.

    After every epoch: the network's and the optimiser's variables with the number of
    epochs run (``latest.npz``) and, when the validation loss improves on ``best_val_loss``,
    the same of that epoch (``best.npz``), each written atomically. A fit that finds
    ``latest.npz`` continues after its epoch, and a fit that ends removes it;
    :meth:`restore_best` then loads the best epoch's variables. It does the work of Keras's
    ``BackupAndRestore`` and ``ModelCheckpoint`` in milliseconds an epoch: their HDF5
    writes walk the whole Keras object graph, 2.4 s of a 20 s fit (docs/PERFORMANCE.md).
    """

    def __init__(self, directory: Path, best_val_loss: float | None = None) -> None:
        super().__init__()
        self.directory = directory
        self.best_val_loss = best_val_loss

    def on_train_begin(self, logs: dict | None = None) -> None:
        epochs = self._load(self.directory / LATEST_FILE)
        if epochs is not None:
            self.model._initial_epoch = epochs  # read by run_epochs, as by Keras's fit
            logger.info("resuming after epoch %d from %s", epochs, self.directory)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        loss = (logs or {}).get("val_loss")
        improved = loss is not None and np.isfinite(loss)
        improved = improved and (self.best_val_loss is None or loss < self.best_val_loss)
        if improved:
            self.best_val_loss = loss
            self._save(self.directory / BEST_FILE, epoch + 1)
        self._save(self.directory / LATEST_FILE, epoch + 1)

    def on_train_end(self, logs: dict | None = None) -> None:
        """A finished fit has nothing to resume (a kill skips this: its state stays)."""
        (self.directory / LATEST_FILE).unlink(missing_ok=True)

    def restore_best(self) -> bool:
        """Load the best epoch's variables, if an epoch improved; whether one did."""
        return self._load(self.directory / BEST_FILE) is not None

    def _variables(self) -> list[Any]:
        return [*self.model.variables, *self.model.optimizer.variables]

    def _save(self, path: Path, epochs: int) -> None:
        arrays = {f"v{i}": np.asarray(v) for i, v in enumerate(self._variables())}

        def write(tmp: Path) -> None:
            with open(tmp, "wb") as handle:
                np.savez(handle, epochs=np.int64(epochs), **arrays)

        atomic_write(path, write)

    def _load(self, path: Path) -> int | None:
        """Assign the variables stored at ``path``; its epoch count (None without one)."""
        if not path.is_file():
            return None
        if not self.model.optimizer.built:  # its moments exist from the first step on
            self.model.optimizer.build(self.model.trainable_variables)
        variables = self._variables()
        with np.load(path) as stored:
            if len(stored.files) != len(variables) + 1:
                raise ValueError(f"{path} holds the state of another network")
            for i, variable in enumerate(variables):
                variable.assign(stored[f"v{i}"])
            return int(stored["epochs"])


class EpochLog(keras.callbacks.Callback):
    """Records per-epoch losses, the learning rate the epoch ran with, and its time.

    The learning rate is read when the epoch begins: ``ReduceLROnPlateau`` cuts it at
    the end of an epoch, before this callback's ``on_epoch_end`` runs. The log survives
    a resume (it is re-read from ``path``).
    """

    def __init__(self, symbol: str, path: Path, on_epoch: EpochCallback | None) -> None:
        super().__init__()
        self.symbol = symbol
        self.path = path
        self.on_epoch = on_epoch
        self.epochs: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
        self._epoch_started = 0.0
        self._epoch_learning_rate = float("nan")

    def best_val_loss(self) -> float | None:
        losses = [epoch["val_loss"] for epoch in self.epochs if epoch.get("val_loss") is not None]
        return min(losses) if losses else None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch_started = time.perf_counter()
        self._epoch_learning_rate = _learning_rate(self.model)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        record = {
            "epoch": epoch + 1,
            **{key: float(value) for key, value in logs.items() if key != "learning_rate"},
            "learning_rate": self._epoch_learning_rate,
            "seconds": time.perf_counter() - self._epoch_started,
        }
        self.epochs = [e for e in self.epochs if e["epoch"] < record["epoch"]] + [record]
        atomic_write_json(self.path, self.epochs)
        if self.on_epoch is not None:
            self.on_epoch(self.symbol, record)


def _learning_rate(model: keras.Model) -> float:
    return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
