"""Weighted kNN evaluation of an exported encoder from the command line.

  python tools/knn_eval.py --encoder=<SavedModel dir> --train=<source> --test=<source> \
      [--output=<json>] [--config=configs/knn_eval.py[:local]] [--config.knn.k=200 ...] \
      [--random_init]

The train source is the memory bank (k=200, T=0.1 by default). Prints a one-line summary and
writes the JSON report to --output, or prints it when --output is not given.
"""

import json
import os

import _bootstrap  # noqa: F401  (repo root on sys.path)
from absl import app, flags, logging
from ml_collections import config_flags

from byol_tf.evaluation.knn_eval import run_knn_eval
from byol_tf.evaluation.report import summary_line, write_report

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    os.path.join(_bootstrap.REPO_ROOT, "configs", "knn_eval.py"),
    "Config file.",
    lock_config=True,
)
_ENCODER = flags.DEFINE_string("encoder", None, "The exported encoder (SavedModel directory).")
_TRAIN = flags.DEFINE_string("train", None, "Labelled source: the kNN memory bank.")
_TEST = flags.DEFINE_string("test", None, "Labelled source to report accuracy on.")
_OUTPUT = flags.DEFINE_string("output", None, "Where to write the JSON report.")
_RANDOM_INIT = flags.DEFINE_bool("random_init", False, "Evaluate a random-initialised twin.")
flags.mark_flags_as_required(["encoder", "train", "test"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    result = run_knn_eval(
        _ENCODER.value, _TRAIN.value, _TEST.value, _CONFIG.value, random_init=_RANDOM_INIT.value
    )
    print(summary_line(result.report))
    if _OUTPUT.value:
        print(f"Report: {write_report(result.report, _OUTPUT.value)}")
    else:
        print(json.dumps(result.report, indent=2, sort_keys=True))


if __name__ == "__main__":
    app.run(main)
