"""Giving the C heap's free memory back to the operating system.

Building and optimising a TF graph allocates and frees many small objects through malloc, and
glibc keeps what was freed inside the process, where it still counts as resident memory.
Tensors allocated afterwards then sit on top of that garbage. `release_free_memory` asks glibc
to return its free pages (`malloc_trim`); with another C library (macOS, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _malloc_trim():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # no C library found, or not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Returns glibc's free heap pages to the OS; True if any were released.

    Cheap (it walks the free lists, milliseconds), but not free: call it at phase boundaries,
    not every step.
    """
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
