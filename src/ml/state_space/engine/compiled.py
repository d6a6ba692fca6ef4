"""Compile a training step once per process and reuse it for every fit of the same shape.

XLA compiles a network's train step on its first batch, which costs more than several
epochs of a small model. Symbols, folds and seeds that share the network architecture,
the number of features and the batch size can share one compiled network: each fit
copies its freshly initialised (seeded) variables into the cached network and resets the
optimiser, so the result is the same as training the fresh network itself, and then
copies the trained variables back, so every forecaster owns its weights.

Inference is shared the same way: :data:`INFERENCE` holds one compiled function per
architecture that takes the weights as arguments, so loading (or reloading) a model
compiles nothing and leaves no compiled function behind when the model is dropped.

Seeding a fit must not undo that: :func:`set_random_seed` seeds what these networks draw
from without TensorFlow's global seed, whose setter clears TensorFlow's kernel cache.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Hashable

import keras
import numpy as np
import tensorflow as tf

logger = logging.getLogger(__name__)

CAPACITY = 2  # architectures kept per process; each holds its compiled train/predict steps


class CompiledNetworks:
    """A small LRU of compiled training networks, keyed by everything that shapes them."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self._networks: OrderedDict[Hashable, keras.Model] = OrderedDict()

    def __len__(self) -> int:
        return len(self._networks)

    def clear(self) -> None:
        self._networks.clear()

    def trainer_for(
        self, key: Hashable, fresh: keras.Model, build: Callable[[], keras.Model]
    ) -> keras.Model:
        """The cached network of ``key`` (built on a miss) holding ``fresh``'s initial
        variables and a reset optimiser, at ``learning_rate`` of ``fresh``'s optimiser."""
        trainer = self._networks.pop(key, None)
        if trainer is None:
            trainer = build()
            logger.debug("compiled network cache miss (%d cached)", len(self._networks))
        self._networks[key] = trainer
        while len(self._networks) > self.capacity:
            self._networks.popitem(last=False)
        copy_variables(fresh, trainer)
        # FitState sets this when it resumes a fit, and nothing clears it: a later
        # fit of the same network would start at that epoch
        trainer._initial_epoch = None
        learning_rate = keras.ops.convert_to_numpy(fresh.optimizer.learning_rate)
        reset_optimizer(trainer.optimizer, float(learning_rate))
        return trainer


def set_random_seed(seed: int) -> None:
    """``keras.utils.set_random_seed`` without ``tf.random.set_seed``.

    Keras draws every random number of these networks (initialisers, dropout masks) from
    its global seed generator, and the augmentation comes from NumPy, so TensorFlow's
    global seed decides nothing here. Setting it clears TensorFlow's kernel cache, and the
    next call of every compiled function instantiates it again: 0.7-0.8 s on the first
    batch of each fit of a cached train step (docs/PERFORMANCE.md). So Keras's own setter
    runs (Python's, NumPy's and Keras's seeds, a fresh global seed generator) with
    TensorFlow's setter stood down for the call: public APIs only, and the weights are
    those of ``keras.utils.set_random_seed`` (``tests/engine/test_compiled.py``).
    """
    set_tf_seed = tf.random.set_seed
    tf.random.set_seed = _keep_kernel_cache
    try:
        keras.utils.set_random_seed(seed)
    finally:
        tf.random.set_seed = set_tf_seed


def _keep_kernel_cache(seed: int) -> None:
    """Stands in for ``tf.random.set_seed`` while :func:`set_random_seed` runs."""


def copy_variables(source: keras.Model, target: keras.Model) -> None:
    """Weights and random-seed states of ``source`` into ``target`` (same architecture)."""
    if len(source.variables) != len(target.variables):
        raise ValueError("networks differ in architecture: cannot copy variables")
    for src, dst in zip(source.variables, target.variables, strict=True):
        dst.assign(src)


def reset_optimizer(optimizer: keras.optimizers.Optimizer, learning_rate: float) -> None:
    """Back to the state of a new optimiser: zero step count and moments, initial rate."""
    for variable in optimizer.variables:
        variable.assign(np.zeros(variable.shape, dtype=variable.dtype))
    optimizer.learning_rate = learning_rate


class SharedInference:
    """One compiled ``(trainable, non_trainable, windows) -> outputs`` function per
    architecture: any network of that architecture runs through it with its own weights."""

    def __init__(self) -> None:
        self._functions: dict[Hashable, Callable] = {}

    def __len__(self) -> int:
        return len(self._functions)

    def function_for(self, key: Hashable, network: keras.Model, jit_compile: bool) -> Callable:
        """The function of ``key``; on a miss, ``network`` becomes its template."""
        function = self._functions.get(key)
        if function is None:

            def infer(trainable: list, non_trainable: list, windows: tf.Tensor) -> tf.Tensor:
                outputs, _ = network.stateless_call(
                    trainable, non_trainable, windows, training=False
                )
                return outputs

            function = tf.function(infer, jit_compile=jit_compile, reduce_retracing=True)
            self._functions[key] = function
        return function


def weights_of(network: keras.Model) -> tuple[list, list]:
    """``(trainable, non_trainable)`` variable values, the arguments of a shared function."""
    return (
        [variable.value for variable in network.trainable_variables],
        [variable.value for variable in network.non_trainable_variables],
    )


NETWORKS = CompiledNetworks()  # this process's cache
INFERENCE = SharedInference()
