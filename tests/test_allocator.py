"""The malloc setting reaches every process that trains: read back through its effect.

A 48 MiB block is above glibc's largest adaptive mmap threshold (32 MiB), so by default
``malloc`` maps it (its chunk header carries the IS_MMAPPED flag); with the
project's setting it comes from the heap. The probe runs in a worker spawned exactly as
the training CLI and the backtest spawn theirs (``init_worker`` as the initializer).
"""

import ctypes
import multiprocessing
import platform
import sys
from concurrent.futures import ProcessPoolExecutor

import pytest

from ml.state_space import allocator
from ml.state_space.execution.pool import init_worker

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
    reason="the setting is glibc's",
)

BLOCK = 48 << 20


IS_MMAPPED = 0x2  # glibc's chunk-header flag: the chunk is a mapping of its own


def large_block_is_mapped() -> bool:
    """Whether ``malloc`` serves a 48 MiB request with its own mapping: the flag in the
    chunk's own header (a process-wide count would see other threads' mappings too)."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    block = libc.malloc(BLOCK)
    size_field = ctypes.c_size_t.from_address(block - ctypes.sizeof(ctypes.c_size_t)).value
    libc.free(block)
    return bool(size_field & IS_MMAPPED)


def _spawned_process_maps_large_block(as_training_worker: bool = True) -> bool:
    """Probe in a fresh spawned process: a training worker, or one that only imports the
    package (this test module imports ``ml.state_space``)."""
    spawn = multiprocessing.get_context("spawn")
    worker = {"initializer": init_worker, "initargs": (1, None)} if as_training_worker else {}
    with ProcessPoolExecutor(1, mp_context=spawn, **worker) as pool:
        return pool.submit(large_block_is_mapped).result(timeout=120)


def test_importing_the_package_keeps_large_blocks_in_the_heap():
    # A fresh process, not this test worker: after hundreds of tests its heap is no
    # longer what a service or training process starts from (CI once saw a mapped block).
    assert set(allocator.APPLIED) == set(allocator.SETTINGS)
    assert not _spawned_process_maps_large_block(as_training_worker=False)


def test_a_spawned_training_worker_runs_with_the_setting():
    assert not _spawned_process_maps_large_block()


def test_turning_it_off_leaves_glibc_default_in_spawned_workers(monkeypatch):
    monkeypatch.setenv(allocator.DISABLE_VARIABLE, "0")
    assert _spawned_process_maps_large_block()


def test_off_switch_and_users_own_glibc_variables_win(monkeypatch):
    monkeypatch.setenv(allocator.DISABLE_VARIABLE, "off")
    assert allocator.retain_freed_memory() == {}
    monkeypatch.delenv(allocator.DISABLE_VARIABLE)
    monkeypatch.setenv("MALLOC_TOP_PAD_", "0")
    assert set(allocator.retain_freed_memory()) == {"M_MMAP_THRESHOLD", "M_TRIM_THRESHOLD"}
