"""Weighted kNN evaluation of an exported encoder from the command line.

  python tools/knn_eval.py --encoder=<SavedModel dir> --train=<source> --test=<source> \
      [--output=<json>] [--config=configs/knn_eval.py[:local]] [--config.knn.k=200 ...] \
      [--random_init]

The train source is the memory bank (k=200, T=0.1 by default). Prints a one-line summary and
writes the JSON report to --output, or prints it when --output is not given.
"""

import _bootstrap  # noqa: F401  (repo root on sys.path)
import _downstream
from absl import app

from byol_tf.evaluation.knn_eval import run_knn_eval

main = _downstream.evaluation_main("knn_eval", run_knn_eval)

if __name__ == "__main__":
    app.run(main)
