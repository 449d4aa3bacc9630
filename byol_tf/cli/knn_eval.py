"""Weighted kNN evaluation of an exported encoder from the command line.

  byol-knn-eval --encoder=<SavedModel dir> --train=<source> --test=<source> \
      [--output=<json>] [--config=configs/knn_eval.py[:local]] [--config.eval.knn_k=200 ...] \
      [--random_init]

The train source is the memory bank (k=200, T=0.1 by default). Prints a one-line summary and
writes the JSON report to --output, or prints it when --output is not given.
"""

from byol_tf import cli
from byol_tf.cli import common
from byol_tf.evaluation.knn_eval import run_knn_eval

main = common.evaluation_main("knn_eval", run_knn_eval)


def run() -> None:
    """The `byol-knn-eval` command."""
    cli.run(main)


if __name__ == "__main__":
    run()
