"""Training curves from a run's `metrics.jsonl`: loss, kNN accuracy (when monitored) and
collapse_std against epochs, drawn to a PNG with matplotlib (imported only here)."""

from __future__ import annotations

import json
import math
import os

PANELS = (
    ("loss", ("loss",), "BYOL loss"),
    ("knn", ("knn_top1", "knn_top5"), "kNN accuracy (%)"),
    ("collapse", ("collapse_std",), "collapse_std (~1 healthy, 0 collapsed)"),
)


def read_metrics(path: str) -> list[dict]:
    """The records of a metrics.jsonl file (a run's log; a half-written last line is skipped)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path!r} does not exist: is this a byol-tf workdir?")
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a run still writing, or killed mid-line
    if not records:
        raise ValueError(f"{path!r} holds no metrics yet.")
    return records


def series(records: list[dict], key: str) -> tuple[list[float], list[float]]:
    """(epochs, values) of the records that hold a finite `key`, in step order."""
    points = sorted(
        (r["step"], r.get("epoch", r["step"]), r[key])
        for r in records
        if isinstance(r.get(key), int | float) and math.isfinite(r[key])
    )
    return [p[1] for p in points], [p[2] for p in points]


def plot_metrics(records: list[dict], output: str, title: str = "") -> str:
    """Draws the panels that have data to `output` (PNG); returns the path."""
    try:
        import matplotlib

        matplotlib.use("Agg")  # files only: no display needed
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError("Plotting needs matplotlib: pip install -r requirements.txt") from e
    panels = [p for p in PANELS if any(series(records, k)[0] for k in p[1])]
    fig, axes = plt.subplots(len(panels), 1, figsize=(7, 2.6 * len(panels)), sharex=True)
    axes = [axes] if len(panels) == 1 else list(axes)
    for ax, (name, keys, label) in zip(axes, panels):
        for key in keys:
            x, y = series(records, key)
            if name == "knn":
                y = [100 * v for v in y]
            ax.plot(x, y, marker="o" if name == "knn" else None, markersize=3, label=key)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if len(keys) > 1:
            ax.legend()
    axes[-1].set_xlabel("epoch")
    if title:
        axes[0].set_title(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    fig.savefig(output, dpi=120)
    plt.close(fig)
    return output
