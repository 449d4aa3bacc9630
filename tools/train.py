"""`byol-train` from a clone: train, as `python tools/train.py` (byol_tf/cli/train.py)."""

import _bootstrap  # noqa: F401  (repo root on sys.path)

from byol_tf.cli.train import run

if __name__ == "__main__":
    run()
