"""Plots a run's loss, kNN and online-probe accuracy (when logged) and collapse_std.

  byol-plot --workdir=<run dir> [--output=<png>]

The PNG goes to <workdir>/metrics.png unless --output says otherwise. Needs matplotlib
(in requirements.txt).
"""

import os

from absl import app, flags

from byol_tf import cli
from byol_tf.training.plotting import plot_metrics, read_metrics

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory holding metrics.jsonl.")
_OUTPUT = flags.DEFINE_string("output", None, "PNG to write (default: <workdir>/metrics.png).")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    records = read_metrics(os.path.join(_WORKDIR.value, "metrics.jsonl"))
    output = _OUTPUT.value or os.path.join(_WORKDIR.value, "metrics.png")
    title = os.path.basename(os.path.normpath(_WORKDIR.value))
    print(f"Plotted {len(records)} logged steps to {plot_metrics(records, output, title)}")


def run() -> None:
    """The `byol-plot` command."""
    cli.run(main)


if __name__ == "__main__":
    run()
