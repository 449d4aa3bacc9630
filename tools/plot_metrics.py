"""`byol-plot` from a clone: plot_metrics, as `python tools/plot_metrics.py` (byol_tf/cli/plot.py)."""

import _bootstrap  # noqa: F401  (repo root on sys.path)

from byol_tf.cli.plot import run

if __name__ == "__main__":
    run()
