"""The JSON report that `tools/linear_eval.py`, `tools/knn_eval.py` and `tools/finetune.py` write.

One schema for the three tools (version `SCHEMA_VERSION`; documented in docs/evaluation.md):

    schema_version  int      1
    tool            str      "linear_eval" | "knn_eval" | "finetune"
    encoder         str      the SavedModel evaluated (absolute path)
    init            str      "pretrained", or "random" for the random-initialised baselines
                             (--random_init, --from_scratch)
    data            object   train, test: source strings; num_train, num_test: examples used;
                             num_classes; image_size
    mode            str      linear_eval: "cached" | "augmented"; knn_eval: "knn";
                             finetune: "finetune"
    settings        object   the tool's resolved settings (learning rate chosen, epochs, ...)
                             and "config", the whole config used
    top1, top5      float    test accuracy as a fraction in [0, 1]
    subset          object?  finetune only (null otherwise): num_examples, per_class (count of
                             each class id), sha256 (of the example names, one per line),
                             method, seed
    wall_time_s     float    the tool's run time, loading included
    created         str      UTC time, ISO 8601
    versions        object   byol_tf, tensorflow, keras
"""

from __future__ import annotations

import datetime
import math
import os

from byol_tf.platform import files as io

SCHEMA_VERSION = 1
TOOLS = ("linear_eval", "knn_eval", "finetune")
MODES = {
    "linear_eval": ("cached", "augmented"),
    "knn_eval": ("knn",),
    "finetune": ("finetune",),
}
INITS = ("pretrained", "random")
FIELDS = {
    "schema_version": int,
    "tool": str,
    "encoder": str,
    "init": str,
    "data": dict,
    "mode": str,
    "settings": dict,
    "top1": float,
    "top5": float,
    "subset": (dict, type(None)),
    "wall_time_s": float,
    "created": str,
    "versions": dict,
}
DATA_FIELDS = {
    "train": str,
    "test": str,
    "num_train": int,
    "num_test": int,
    "num_classes": int,
    "image_size": int,
}
SUBSET_FIELDS = {
    "num_examples": int,
    "per_class": list,
    "sha256": str,
    "method": str,
    "seed": (int, type(None)),
}


def make_report(
    tool: str,
    encoder: str,
    init: str,
    data: dict,
    mode: str,
    settings: dict,
    accuracy: dict,
    wall_time_s: float,
    subset: dict | None = None,
) -> dict:
    """Assembles and validates a report; `accuracy` holds "top1" and "top5"."""
    import keras
    import tensorflow as tf

    from byol_tf.version import __version__

    report = {
        "schema_version": SCHEMA_VERSION,
        "tool": tool,
        "encoder": encoder if io.is_remote(encoder) else os.path.abspath(encoder),
        "init": init,
        "data": dict(data),
        "mode": mode,
        "settings": settings,
        "top1": float(accuracy["top1"]),
        "top5": float(accuracy["top5"]),
        "subset": subset,
        "wall_time_s": float(wall_time_s),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "versions": {
            "byol_tf": __version__,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
        },
    }
    validate_report(report)
    return report


def _check_fields(record: dict, fields: dict, where: str) -> None:
    missing = sorted(set(fields) - set(record))
    if missing:
        raise ValueError(f"{where} lacks {', '.join(missing)}.")
    for key, kind in fields.items():
        value = record[key]
        # bool is an int in Python; no field here is a bool.
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError(f"{where}: {key}={value!r} should be of type {kind}.")


def validate_report(report: dict) -> None:
    """Raises ValueError naming the first field that does not follow the schema."""
    _check_fields(report, FIELDS, "The report")
    if report["schema_version"] != SCHEMA_VERSION:
        raise ValueError(f"schema_version={report['schema_version']} is not {SCHEMA_VERSION}.")
    if report["tool"] not in TOOLS:
        raise ValueError(f"tool={report['tool']!r} is not one of {', '.join(TOOLS)}.")
    if report["mode"] not in MODES[report["tool"]]:
        raise ValueError(f"mode={report['mode']!r} is not valid for tool {report['tool']!r}.")
    if report["init"] not in INITS:
        raise ValueError(f"init={report['init']!r} is not one of {', '.join(INITS)}.")
    _check_fields(report["data"], DATA_FIELDS, "The report's data")
    for key in ("top1", "top5"):
        if not 0.0 <= report[key] <= 1.0:
            raise ValueError(f"{key}={report[key]} is not a fraction in [0, 1].")
    if report["top5"] < report["top1"]:
        raise ValueError(f"top5={report['top5']} is below top1={report['top1']}.")
    if report["tool"] == "finetune" and report["subset"] is None:
        raise ValueError("A finetune report needs its subset.")
    if report["subset"] is not None:
        _check_fields(report["subset"], SUBSET_FIELDS, "The report's subset")
        if sum(report["subset"]["per_class"]) != report["subset"]["num_examples"]:
            raise ValueError("subset.per_class does not add up to subset.num_examples.")
    if not math.isfinite(report["wall_time_s"]) or report["wall_time_s"] < 0:
        raise ValueError(f"wall_time_s={report['wall_time_s']} is not a duration.")


def write_report(report: dict, path: str) -> str:
    """Validates `report` and writes it to `path` (atomically: temporary file, then rename)."""
    validate_report(report)
    io.makedirs(os.path.dirname(path if io.is_remote(path) else os.path.abspath(path)))
    return io.atomic_write_json(path, report)


def read_report(path: str) -> dict:
    """Loads a report and checks it against the schema."""
    report = io.read_json(path)
    if report is None:
        raise FileNotFoundError(f"No report at {path!r}.")
    validate_report(report)
    return report


def summary_line(report: dict) -> str:
    """One line for the terminal: tool, mode, accuracy, encoder, data, time."""
    subset = report["subset"]
    labels = f", {subset['num_examples']} labels ({subset['sha256'][:12]})" if subset else ""
    init = " [random init]" if report["init"] == "random" else ""
    return (
        f"{report['tool']} ({report['mode']}){init}: top-1 {100 * report['top1']:.2f}%, "
        f"top-5 {100 * report['top5']:.2f}% on {report['data']['test']} "
        f"(train {report['data']['train']}{labels}), encoder {report['encoder']}, "
        f"{report['wall_time_s']:.0f} s"
    )
