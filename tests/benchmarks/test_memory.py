"""benchmarks/bench/memory.py: the resident set now and at its peak, in MiB."""

import numpy as np

from benchmarks.bench import memory


def test_peak_rss_follows_an_allocation_and_never_falls():
    before_now, before_peak = memory.rss_mb(), memory.peak_rss_mb()
    assert 0 < before_now <= before_peak + 1  # the peak is at least what is resident now
    block = np.ones(64 * 2**20 // 8)  # 64 MiB, touched
    assert memory.rss_mb() > before_now + 48
    assert memory.peak_rss_mb() >= memory.rss_mb() - 1
    del block
    assert memory.peak_rss_mb() >= before_peak
