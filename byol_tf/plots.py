"""Training curves from `metrics.jsonl` as PNG files (matplotlib, imported only when drawing).

`read_metrics` turns a run's log into one record per step (a resumed run logs the steps after
its last checkpoint twice; the later record wins). `plot_curves` draws one metric for one or
several runs. The experiment runner uses both; keep other plotting tools on these two.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence


def read_metrics(path: str) -> list[dict]:
    """The records of a `metrics.jsonl`, one per step, sorted by step."""
    by_step = {}
    with open(path) as f:
        for line in f:
            if line.strip():
                record = json.loads(line)
                by_step[int(record["step"])] = record
    return [by_step[step] for step in sorted(by_step)]


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
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on servers and in CI
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
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
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
