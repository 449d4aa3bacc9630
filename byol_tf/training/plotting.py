"""Training curves from `metrics.jsonl` as PNG files (matplotlib, imported only when drawing).

`read_metrics` turns a run's log into one record per step. `plot_metrics` draws one run's loss, kNN
accuracy and online-probe top-1 (each when logged) and collapse_std; `plot_curves` draws one metric for several runs
(the experiment runner's collapse-indicator plots).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence

from byol_tf.platform import files as io

PANELS = (
    ("loss", ("loss",), "BYOL loss"),
    ("knn", ("knn_top1", "knn_top5"), "kNN accuracy (%)"),
    ("probe", ("probe_top1",), "online probe top-1 (%)"),
    ("collapse", ("collapse_std",), "collapse_std (~1 healthy, 0 collapsed)"),
)


_PERCENT = ("knn", "probe")


def read_metrics(path: str) -> list[dict]:
    """The records of a metrics.jsonl file merged into one per step, sorted by step.

    Records of one step are merged (the kNN monitor logs its own record next to the loss
    record), later values winning (a resumed run logs the steps after its last checkpoint
    again). A half-written last line (a run still writing, or killed mid-line) is skipped.
    """
    if not io.exists(path) or io.isdir(path):
        raise FileNotFoundError(f"{path!r} does not exist: is this a byol-tf workdir?")
    by_step = {}
    with io.open_file(path) as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            by_step.setdefault(int(record["step"]), {}).update(record)
    if not by_step:
        raise ValueError(f"{path!r} holds no metrics yet.")
    return [by_step[step] for step in sorted(by_step)]


def series(records: list[dict], key: str) -> tuple[list[float], list[float]]:
    """(epochs, values) of the records that hold a finite `key`, in step order."""
    points = sorted(
        (r["step"], r.get("epoch", r["step"]), r[key])
        for r in records
        if isinstance(r.get(key), int | float) and math.isfinite(r[key])
    )
    return [p[1] for p in points], [p[2] for p in points]


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display on servers and in CI
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("Plotting needs matplotlib: pip install -r requirements.txt") from e
    return plt


def _save(fig, output: str) -> str:
    fig.tight_layout()
    io.makedirs(os.path.dirname(output if io.is_remote(output) else os.path.abspath(output)))
    with io.open_file(output, "wb") as f:
        fig.savefig(f, dpi=120, format=os.path.splitext(output)[1].lstrip(".") or "png")
    fig.clf()
    return output


def plot_metrics(records: list[dict], output: str, title: str = "") -> str:
    """Draws the panels that have data to `output` (PNG); returns the path."""
    plt = _pyplot()
    panels = [p for p in PANELS if any(series(records, k)[0] for k in p[1])]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2.6 * len(panels)), sharex=True)
    axes = [axes] if len(panels) == 1 else list(axes)
    for ax, (name, keys, label) in zip(axes, panels):
        for key in keys:
            x, y = series(records, key)
            if name in _PERCENT:
                y = [100 * v for v in y]
            ax.plot(x, y, marker="o" if name == "knn" else None, markersize=3, label=key)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend()
    axes[-1].set_xlabel("epoch")
    if title:
        axes[0].set_title(title)
    _save(fig, output)
    plt.close(fig)
    return output


def plot_curves(
    runs: Mapping[str, Sequence[dict]],
    key: str,
    path: str,
    title: str = "",
    x_key: str = "epoch",
) -> str:
    """Draws `key` against `x_key` for each run (label -> records) into the PNG `path`.

    Records without `key` are skipped; returns `path`.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for label, records in runs.items():
        points = [(r[x_key], r[key]) for r in records if r.get(key) is not None]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, label=label, linewidth=1.5)
    ax.set_xlabel(x_key)
    ax.set_ylabel(key)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if len(runs) > 1:
        ax.legend(fontsize=8)
    _save(fig, path)
    plt.close(fig)
    return path
