"""`byol-linear-eval` from a clone: linear_eval, as `python tools/linear_eval.py` (byol_tf/cli/linear_eval.py)."""

import _bootstrap  # noqa: F401  (repo root on sys.path)

from byol_tf.cli.linear_eval import run

if __name__ == "__main__":
    run()
