"""Keep freed heap memory inside the process, so the training step stops re-faulting it.

glibc's malloc serves every request above its mmap threshold (128 KiB at start, adapting
up to 32 MiB) with a fresh ``mmap`` and gives it back with ``munmap`` on free, and trims
the heap's free top back to the OS. A training step allocates and frees the same large
temporary tensors every time, so each step faulted them in again page by page: a third
of a fit's CPU time went to the kernel (docs/PERFORMANCE.md, "The allocator").

Importing this module calls :func:`retain_freed_memory`, which sets (through ``mallopt``) a
fixed high mmap threshold, a high trim threshold and a top pad, so freed blocks stay in the
heap and the next step reuses them. ``ml.state_space`` imports it before anything else, and
every process that trains or predicts imports ``ml.state_space``: the service, the notebook
API, in-process backtests, and every spawned or Dask worker (each unpickles its task from
this package). ``mallopt`` acts on
later allocations, so it works whenever the import happens, TensorFlow loaded or not.

``MAMBA_MALLOC_RETAIN=0`` turns it off (memory goes back to the OS as glibc does by
default, at the cost of the page faults). A parameter that the user set through glibc's
own variable (``MALLOC_MMAP_THRESHOLD_`` ...) is left as the user set it. Elsewhere than
Linux with glibc (macOS, musl) this is a no-op, logged at debug level.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
import sys

logger = logging.getLogger(__name__)

DISABLE_VARIABLE = "MAMBA_MALLOC_RETAIN"

_MiB = 1 << 20
# (mallopt parameter number from glibc's malloc.h, value, glibc's own environment variable).
# Requests up to 1 GiB come from the heap and are reused after free; only larger ones (a
# very large data frame) are mapped and unmapped. mallopt takes an int, so <= 2 GiB - 1.
SETTINGS: dict[str, tuple[int, int, str]] = {
    "M_MMAP_THRESHOLD": (-3, 1024 * _MiB, "MALLOC_MMAP_THRESHOLD_"),
    "M_TRIM_THRESHOLD": (-1, 1024 * _MiB, "MALLOC_TRIM_THRESHOLD_"),
    "M_TOP_PAD": (-2, 64 * _MiB, "MALLOC_TOP_PAD_"),
}


def retain_freed_memory() -> dict[str, int]:
    """Apply :data:`SETTINGS` through glibc's ``mallopt``; the settings applied, by name.

    Empty when turned off, off glibc, or when every parameter was set by the user's own
    ``MALLOC_*_`` variable.
    """
    if os.environ.get(DISABLE_VARIABLE, "1").strip().lower() in {"0", "false", "no", "off"}:
        logger.debug("%s is off: glibc's default malloc tuning is kept", DISABLE_VARIABLE)
        return {}
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        logger.debug("not Linux with glibc (%s): malloc tuning skipped", sys.platform)
        return {}
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    applied = {}
    for name, (parameter, value, glibc_variable) in SETTINGS.items():
        if glibc_variable in os.environ:
            logger.debug("%s is set by %s: left as it is", name, glibc_variable)
        elif mallopt(parameter, value) == 1:
            applied[name] = value
        else:
            logger.debug("mallopt(%s, %d) was refused", name, value)
    return applied


APPLIED = retain_freed_memory()
