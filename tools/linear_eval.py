"""Linear evaluation of an exported encoder (frozen) from the command line.

  python tools/linear_eval.py --encoder=<SavedModel dir> --train=<source> --test=<source> \
      [--output=<json>] [--config=configs/linear_eval.py[:local]] [--config.<field>=<value> ...] \
      [--random_init]

Sources: synthetic[:train|test], tfds:<name>:<split>, folder:<path>. Prints a one-line summary
(including the mode, cached or augmented) and writes the JSON report to --output, or prints it
when --output is not given. --random_init evaluates a randomly initialised encoder of the same
architecture instead (the baseline; needs <encoder>.keras beside the SavedModel).
"""

import json
import os

import _bootstrap  # noqa: F401  (repo root on sys.path)
from absl import app, flags, logging
from ml_collections import config_flags

from byol_tf.evaluation.linear import run_linear_eval
from byol_tf.evaluation.report import summary_line, write_report

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    os.path.join(_bootstrap.REPO_ROOT, "configs", "linear_eval.py"),
    "Config file.",
    lock_config=True,
)
_ENCODER = flags.DEFINE_string("encoder", None, "The exported encoder (SavedModel directory).")
_TRAIN = flags.DEFINE_string("train", None, "Labelled source to train the classifier on.")
_TEST = flags.DEFINE_string("test", None, "Labelled source to report accuracy on.")
_OUTPUT = flags.DEFINE_string("output", None, "Where to write the JSON report.")
_RANDOM_INIT = flags.DEFINE_bool("random_init", False, "Evaluate a random-initialised twin.")
flags.mark_flags_as_required(["encoder", "train", "test"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    result = run_linear_eval(
        _ENCODER.value, _TRAIN.value, _TEST.value, _CONFIG.value, random_init=_RANDOM_INIT.value
    )
    print(summary_line(result.report))
    if _OUTPUT.value:
        print(f"Report: {write_report(result.report, _OUTPUT.value)}")
    else:
        print(json.dumps(result.report, indent=2, sort_keys=True))


if __name__ == "__main__":
    app.run(main)
