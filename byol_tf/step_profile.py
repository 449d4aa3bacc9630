"""Where a compiled step's time goes, op by op, from a `tf.profiler` trace.

`profile_calls` records a trace of a few calls of any compiled function and `summarize_trace`
reads the trace file (an XSpace protocol buffer, which TensorFlow ships the Python bindings
for) without TensorBoard: every op the executor ran on the host CPU is one event named
`<scope>/<name>:<OpType>`, with its duration. Ops are totalled by type (the kernel TensorFlow
picked, e.g. `_MklNativeConv2D`) and by part of the BYOL step (online forward, backward, target
forward, optimizer, EMA), as a share of the summed op time. On 2 cores two ops run at once, so
the op time adds up to about twice the wall time.
"""

from __future__ import annotations

import collections
import glob
import os
import re
import tempfile
from collections.abc import Callable

import tensorflow as tf

# The part of the BYOL step an op belongs to, from its name scope; first match wins.
PARTS = (
    ("optimizer", re.compile(r"(^|/)lars(_\d+)?/|(^|/)(sgd|adam|optimizer)(_\d+)?/")),
    ("ema", re.compile(r"(^|/)ema")),
    ("backward", re.compile(r"gradient_tape/")),
    ("target forward", re.compile(r"(^|/)target(_\d+)?/")),
    ("online forward", re.compile(r"(^|/)online(_\d+)?/")),
)


_OP_EVENT = re.compile(r"[^\s:]+:[A-Za-z_]\w*")


def profile_calls(fn: Callable[[], object], calls: int) -> str:
    """Runs `fn` `calls` times under the profiler; returns the trace file's path."""
    logdir = tempfile.mkdtemp(prefix="byol_profile_")
    tf.profiler.experimental.start(logdir)
    try:
        for _ in range(calls):
            fn()
    finally:
        tf.profiler.experimental.stop()
    traces = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)
    if not traces:
        raise RuntimeError(f"tf.profiler wrote no trace under {logdir}.")
    return traces[0]


def op_durations(trace_path: str) -> collections.Counter:
    """Op name -> total picoseconds, over every op event of the host CPU plane."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(trace_path, "rb") as f:
        space.ParseFromString(f.read())
    totals: collections.Counter = collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if line.name == "python":  # Python-side spans (the call, eager dispatch), not ops
                continue
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                # Ops only: executor and dispatch spans (`ExecutorState::Process`,
                # `EagerLocalExecute: __inference_...`) enclose ops and would count them twice.
                if _OP_EVENT.fullmatch(name):
                    totals[name] += event.duration_ps
    return totals


def part_of(op_name: str) -> str:
    scope = op_name.rsplit(":", 1)[0]
    for part, pattern in PARTS:
        if pattern.search(scope):
            return part
    return "other"


def summarize_trace(trace_path: str, calls: int, top: int = 15) -> dict:
    """Milliseconds per call and share of the op time, by op type and by step part."""
    durations = op_durations(trace_path)
    total = sum(durations.values())
    if not total:
        raise RuntimeError(f"The trace {trace_path} holds no op events.")
    by_type: collections.Counter = collections.Counter()
    by_part: collections.Counter = collections.Counter()
    for name, ps in durations.items():
        by_type[name.rsplit(":", 1)[1]] += ps
        by_part[part_of(name)] += ps

    def rows(counter, n=None):
        return [
            {"name": k, "ms_per_call": v / 1e9 / calls, "share": v / total}
            for k, v in counter.most_common(n)
        ]

    return {
        "calls": calls,
        "op_ms_per_call": total / 1e9 / calls,
        "distinct_ops": len(durations),
        "by_op_type": rows(by_type, top),
        "by_part": rows(by_part),
    }
