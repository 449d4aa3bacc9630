"""byol_tf.platform.heap: freed C heap goes back to the OS (glibc only)."""

import ctypes
import os

import pytest

from byol_tf.platform import heap

MB = 2**20


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MB


@pytest.mark.skipif(heap._malloc_trim() is None, reason="needs glibc's malloc_trim")
def test_release_free_memory_returns_freed_small_blocks():
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    # Small blocks come from the heap, not from mmap; touch them so that they are resident.
    blocks = [libc.malloc(1024) for _ in range(100_000)]
    for b in blocks:
        libc.memset(b, 1, 1024)
    for b in blocks[:-1]:  # the last one pins the heap's top, so glibc cannot shrink it itself
        libc.free(b)
    held = _rss_mb()
    assert heap.release_free_memory()
    released = held - _rss_mb()
    libc.free(blocks[-1])
    assert released > 50, released  # of the ~100 MB freed
