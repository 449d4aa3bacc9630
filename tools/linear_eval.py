"""Linear evaluation of an exported encoder (frozen) from the command line.

  python tools/linear_eval.py --encoder=<SavedModel dir> --train=<source> --test=<source> \
      [--output=<json>] [--config=configs/linear_eval.py[:local]] [--config.<field>=<value> ...] \
      [--random_init]

Sources: synthetic[:train|test], tfds:<name>:<split>, folder:<path>. Prints a one-line summary
(including the mode, cached or augmented) and writes the JSON report to --output, or prints it
when --output is not given. --random_init evaluates a randomly initialised encoder of the same
architecture instead (the baseline; needs <encoder>.keras beside the SavedModel).
"""

import os

import _bootstrap  # noqa: F401  (repo root on sys.path)
import _downstream
from absl import app, flags
from ml_collections import config_flags

from byol_tf.evaluation.linear import run_linear_eval

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    os.path.join(_bootstrap.REPO_ROOT, "configs", "linear_eval.py"),
    "Config file.",
    lock_config=True,
)
_RANDOM_INIT = flags.DEFINE_bool("random_init", False, "Evaluate a random-initialised twin.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    _downstream.quiet_tensorflow()
    d = _downstream
    result = run_linear_eval(
        d.ENCODER.value, d.TRAIN.value, d.TEST.value, _CONFIG.value, random_init=_RANDOM_INIT.value
    )
    d.finish(result.report)


if __name__ == "__main__":
    app.run(main)
