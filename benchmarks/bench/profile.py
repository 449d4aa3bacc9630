"""Where a compiled step's time goes, op by op, from a `tf.profiler` trace.

`profile_calls` records a trace of a few calls of any compiled function and `summarize_trace`
reads the trace file (an XSpace protocol buffer, which TensorFlow ships the Python bindings
for) without TensorBoard: every op the executor ran on the host CPU is one event named
`<scope>/<name>:<OpType>`, with its duration. Ops are totalled by type (the kernel TensorFlow
picked, e.g. `_MklNativeConv2D`) and by part of the BYOL step (online forward, backward, target
forward, optimizer, EMA), as a share of the summed op time. On 2 cores two ops run at once, so
the op time adds up to about twice the wall time.

The same trace records every allocation and deallocation of TF's CPU allocator, with the op
that asked; `memory_at_peak` replays them to list the tensors alive at the allocator's peak.
"""

from __future__ import annotations

import collections
import functools
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
    # The first query turns on the CPU allocator's accounting, without which the trace holds
    # no allocator events for `memory_at_peak`. Without oneDNN the default allocator has none
    # to turn on (ValueError): the trace then has no allocator events, which memory_at_peak says.
    try:
        tf.config.experimental.get_memory_info("CPU:0")
    except ValueError:
        pass
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


@functools.lru_cache(maxsize=2)  # op times and memory read the same trace
def _host_planes(trace_path: str) -> tuple:
    """The trace's host CPU planes (an XSpace protocol buffer, parsed once)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(trace_path, "rb") as f:
        space.ParseFromString(f.read())
    return tuple(plane for plane in space.planes if plane.name == "/host:CPU")


def op_durations(trace_path: str) -> collections.Counter:
    """Op name -> total picoseconds, over every op event of the host CPU plane."""
    totals: collections.Counter = collections.Counter()
    for plane in _host_planes(trace_path):
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
    """The step part of an op event `<scope>/<name>:<OpType>` (or a bare op name)."""
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


def _stat_value(plane, stat):
    kind = stat.WhichOneof("value")
    if kind == "ref_value":  # strings stored once in the plane's metadata
        return plane.stat_metadata[stat.ref_value].name
    return getattr(stat, kind) if kind else None


def _memory_events(trace_path: str) -> list[tuple[int, bool, dict]]:
    """(time in ps, is_allocation, stats) of every allocator event on the host, in time order."""
    events = []
    for plane in _host_planes(trace_path):
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name
                if name in ("MemoryAllocation", "MemoryDeallocation"):
                    stats = {
                        plane.stat_metadata[s.metadata_id].name: _stat_value(plane, s)
                        for s in event.stats
                    }
                    when = line.timestamp_ns * 1000 + event.offset_ps
                    events.append((when, name == "MemoryAllocation", stats))
    events.sort(key=lambda e: e[0])
    return events


def memory_at_peak(trace_path: str, top: int = 15) -> dict:
    """The tensors TF's CPU allocator held at its highest point during the trace, in MB.

    Each allocator event carries the allocator's bytes in use after it; replaying the events
    in time order gives the tensors alive at the maximum, each with the op that made it and the
    step part that op belongs to (a forward op's tensor alive at the peak is an activation kept
    for the backward pass). Tensors made before the trace began (weights, optimizer state) are
    in `held_from_before_mb` only. Tensors count at the size they asked for; what TF's BFC
    allocator added by handing out a larger free chunk unsplit (up to twice the request, more
    after fragmentation, as on TF's Eigen path) is `padding_mb`, part of `peak_mb`.
    With oneDNN, TF's CPU allocator serves small tensors (under about 256 KB) from a separate
    pool that the trace does not show: a tiny model's step may leave no events at all.
    """
    events = _memory_events(trace_path)
    if not events:
        return {
            "allocator": None,
            "peak_mb": 0.0,
            "held_from_before_mb": 0.0,
            "padding_mb": 0.0,
            "by_part": [],
            "largest": [],
            "note": "no allocator events: every tensor was below the traced size",
        }
    # Follow the busiest allocator (TF's CPU allocator; others, if any, are small).
    names = collections.Counter(stats.get("allocator_name") for _, _, stats in events)
    allocator = names.most_common(1)[0][0]
    live: dict = {}
    peak, at_peak = -1, {}
    for _, allocation, stats in events:
        if stats.get("allocator_name") != allocator:
            continue
        if allocation:
            live[stats["addr"]] = stats
        else:
            live.pop(stats["addr"], None)
        if stats["bytes_allocated"] > peak:
            peak, at_peak = stats["bytes_allocated"], dict(live)
    mb = 2.0**20
    by_part: collections.Counter = collections.Counter()
    by_op: collections.Counter = collections.Counter()
    shapes = {}
    for stats in at_peak.values():
        op = stats.get("tf_op") or "(unnamed)"
        by_part[part_of(op)] += stats["requested_bytes"]
        by_op[op] += stats["requested_bytes"]
        shapes[op] = stats.get("shape", "")
    made_in_trace = sum(stats["allocation_bytes"] for stats in at_peak.values())
    return {
        "allocator": allocator,
        "peak_mb": peak / mb,
        "held_from_before_mb": (peak - made_in_trace) / mb,
        "padding_mb": (made_in_trace - sum(by_part.values())) / mb,
        "by_part": [{"name": k, "mb": v / mb} for k, v in by_part.most_common()],
        "largest": [{"op": k, "shape": shapes[k], "mb": v / mb} for k, v in by_op.most_common(top)],
    }
