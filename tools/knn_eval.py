"""`byol-knn-eval` from a clone: knn_eval, as `python tools/knn_eval.py` (byol_tf/cli/knn_eval.py)."""

import _bootstrap  # noqa: F401  (repo root on sys.path)

from byol_tf.cli.knn_eval import run

if __name__ == "__main__":
    run()
