"""Runs one measurement in a fresh Python process whose TF executor has one inter-op thread.

A memory peak depends on which independent ops TF's executor runs side by side. With several
inter-op threads that follows timing: on 2 cores, another test process in the same CI job
changed the remat peak ratio from 0.77 to 0.91 (TF's Eigen kernels, whose convolution
gradients hold a large im2col workspace). One inter-op thread runs the ops in one order
whatever else the machine does, and a fresh process starts with nothing held by earlier
tests. The intra-op pool (the kernels' own threads) is left as it is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

from tests import REPO

_RUNNER = """
import importlib, json, sys
module, name, kwargs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
result = getattr(importlib.import_module(module), name)(**kwargs)
print("ISOLATED-RESULT " + json.dumps(result))
"""


def run(module: str, function: str, **kwargs) -> object:
    """`module.function(**kwargs)` in a fresh process; its result must be JSON-serialisable.

    The child inherits the environment, with the settings the test process made at import
    (tests/conftest.py: oneDNN on or off, the BFC allocator when off).
    """
    env = dict(os.environ, TF_NUM_INTEROP_THREADS="1", TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [REPO, env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", _RUNNER, module, function, json.dumps(kwargs)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    for line in done.stdout.splitlines():
        if line.startswith("ISOLATED-RESULT "):
            return json.loads(line[len("ISOLATED-RESULT ") :])
    raise RuntimeError(
        f"{module}.{function} failed in its own process (exit {done.returncode}):\n"
        + done.stderr[-4000:]
    )


def highest(measure: Callable[[int], int], processes: int, enough=None) -> int:
    """The highest of `measure(attempt)` over `processes` attempts, stopping once `enough(it)`.

    The op order TF's executor settles on differs between processes, so a peak measured in one
    process may be a lucky one: a pass is compared by its highest peak over several.
    """
    best = 0
    for attempt in range(processes):
        best = max(best, measure(attempt))
        if enough is not None and enough(best):
            break
    return best


def tensor_peak(call: Callable[[], object]) -> int:
    """Bytes TF's allocator held at most during `call()`, above what it held before.

    `call` runs once first, to trace and warm up outside the measurement.
    """
    import tensorflow as tf

    call()
    tf.config.experimental.reset_memory_stats("CPU:0")
    held = tf.config.experimental.get_memory_info("CPU:0")["current"]
    call()
    return tf.config.experimental.get_memory_info("CPU:0")["peak"] - held
