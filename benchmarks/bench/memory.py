"""The process's memory as the benchmarks report it: resident set size now and at its peak.

One place for both, so the step benchmark and the input-pipeline measurement count alike.
"""

from __future__ import annotations

import resource


def _status_kb(field: str) -> int | None:
    """A field of /proc/self/status in KiB (VmRSS: now, VmHWM: peak so far); None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_mb() -> float:
    """Resident set size now, in MiB (0 where /proc is missing)."""
    return (_status_kb("VmRSS") or 0) / 1024.0


def peak_rss_mb() -> float:
    """The process's peak resident set size so far, in MiB (Linux's getrusage counts KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
