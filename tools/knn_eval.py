"""Weighted kNN evaluation of an exported encoder from the command line.

  python tools/knn_eval.py --encoder=<SavedModel dir> --train=<source> --test=<source> \
      [--output=<json>] [--config=configs/knn_eval.py[:local]] [--config.knn.k=200 ...] \
      [--random_init]

The train source is the memory bank (k=200, T=0.1 by default). Prints a one-line summary and
writes the JSON report to --output, or prints it when --output is not given.
"""

import os

import _bootstrap  # noqa: F401  (repo root on sys.path)
import _downstream
from absl import app, flags
from ml_collections import config_flags

from byol_tf.evaluation.knn_eval import run_knn_eval

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    os.path.join(_bootstrap.REPO_ROOT, "configs", "knn_eval.py"),
    "Config file.",
    lock_config=True,
)
_RANDOM_INIT = flags.DEFINE_bool("random_init", False, "Evaluate a random-initialised twin.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    _downstream.quiet_tensorflow()
    d = _downstream
    result = run_knn_eval(
        d.ENCODER.value, d.TRAIN.value, d.TEST.value, _CONFIG.value, random_init=_RANDOM_INIT.value
    )
    d.finish(result.report)


if __name__ == "__main__":
    app.run(main)
