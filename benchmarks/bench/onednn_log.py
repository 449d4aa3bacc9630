"""Totals of a oneDNN verbose log: where a run's kernel time went, by primitive.

TensorFlow and PyTorch both run their CPU convolutions through oneDNN, and both print one line
per executed primitive when `ONEDNN_VERBOSE=1` is set:

  onednn_verbose,v1,primitive,exec,cpu,convolution,<implementation>,forward_training,<memory
  descriptors>,<attributes>,<algorithm>,mb256_ic64oc64_ih32oh32kh3sh1dh0ph1_iw32ow32kw3sw1dw0pw1,6.1

`exec_records` reads those lines (the kind, implementation, propagation, problem and
milliseconds); `summarize` totals them by kind and propagation, with the FLOP rate of the
convolutions counted from their problem descriptions. Subtracting the records of a shorter run
of the same program (`minus`) leaves the steady-state cost of the steps the longer run added,
without the first step's one-off reorders.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable

_DIMENSION = re.compile(r"([a-z]+)(\d+)")


def exec_records(lines: Iterable[str]) -> tuple[list[dict], int]:
    """One record per primitive `exec` line of a oneDNN verbose log, and how many such lines
    were cut short (a killed run, or another writer's output mixed into the line) and skipped.
    Other lines, oneDNN Graph's among them, are not records."""
    records, broken = [], 0
    for line in lines:
        fields = line.strip().split(",")
        if not fields[0].endswith("_verbose") or "exec" not in fields[:5]:
            continue
        at = fields.index("exec")
        if at > 1 and fields[at - 1] != "primitive":  # oneDNN Graph's `graph,exec` lines
            continue
        try:
            records.append(
                {
                    "kind": fields[at + 2],
                    "implementation": fields[at + 3],
                    "propagation": fields[at + 4],
                    "problem": fields[-2],
                    "ms": float(fields[-1]),
                }
            )
        except (IndexError, ValueError):
            broken += 1
    return records, broken


def convolution_flop(problem: str) -> int:
    """Multiply-adds x 2 of a convolution problem such as `mb2_g2ic8oc4_ih5oh5kh3sh1dh0ph1_...`
    (oneDNN's channel counts are totals over the groups; absent dimensions are 1)."""
    dims = {name: int(value) for name, value in _DIMENSION.findall(problem)}
    size = 1
    for name in ("od", "oh", "ow", "kd", "kh", "kw"):
        size *= dims.get(name, 1)
    groups = dims.get("g", 1)
    return 2 * dims["mb"] * dims["oc"] * (dims["ic"] // groups) * size


def _key(record: dict) -> tuple[str, str]:
    return record["kind"], record["propagation"]


def summarize(records: list[dict], minus: list[dict] | None = None) -> dict:
    """Milliseconds, calls and (for convolutions) GFLOP/s by primitive kind and propagation,
    and by convolution problem; `minus` is subtracted key by key."""
    rows: dict[tuple, collections.Counter] = collections.defaultdict(collections.Counter)
    problems: dict[tuple, collections.Counter] = collections.defaultdict(collections.Counter)
    for sign, batch in ((1, records), (-1, minus or [])):
        for record in batch:
            flop = convolution_flop(record["problem"]) if record["kind"] == "convolution" else 0
            counters = [rows[_key(record)]]
            if flop:
                counters.append(problems[(*_key(record), record["problem"])])
            for counter in counters:
                counter["ms"] += sign * record["ms"]
                counter["calls"] += sign
                counter["flop"] += sign * flop

    def listed(table: dict, names: tuple) -> list[dict]:
        out = []
        for key, totals in sorted(table.items(), key=lambda item: -item[1]["ms"]):
            if not totals["calls"]:
                continue
            row = dict(zip(names, key))
            row.update(ms=totals["ms"], calls=totals["calls"])
            if totals["flop"] and totals["ms"] > 0:
                row["gflops_per_s"] = totals["flop"] / totals["ms"] / 1e6
            out.append(row)
        return out

    by_kind = listed(rows, ("kind", "propagation"))
    convolution_ms = sum(row["ms"] for row in by_kind if row["kind"] == "convolution")
    return {
        "total_ms": sum(row["ms"] for row in by_kind),
        "convolution_ms": convolution_ms,
        "by_kind": by_kind,
        "convolutions": listed(problems, ("kind", "propagation", "problem")),
    }


def scaled(summary: dict, factor: float) -> dict:
    """`summary` with every time and call count multiplied by `factor` (rates unchanged):
    per step, when the log covered several."""
    out = {key: summary[key] * factor for key in ("total_ms", "convolution_ms")}
    for table in ("by_kind", "convolutions"):
        out[table] = [
            {**row, "ms": row["ms"] * factor, "calls": row["calls"] * factor}
            for row in summary[table]
        ]
    return out
