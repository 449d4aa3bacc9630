"""Linear evaluation of an exported encoder (frozen) from the command line.

  byol-linear-eval --encoder=<SavedModel dir> --train=<source> --test=<source> \
      [--output=<json>] [--config=configs/linear_eval.py[:local]] [--config.<field>=<value> ...] \
      [--random_init]

Sources: synthetic[:train|test], tfds:<name>:<split>, folder:<path>. Prints a one-line summary
(including the mode, cached or augmented) and writes the JSON report to --output, or prints it
when --output is not given. --random_init evaluates a randomly initialised encoder of the same
architecture instead (the baseline; needs <encoder>.keras beside the SavedModel).
"""

from byol_tf import cli
from byol_tf.cli import common
from byol_tf.evaluation.linear import run_linear_eval

main = common.evaluation_main("linear_eval", run_linear_eval)


def run() -> None:
    """The `byol-linear-eval` command."""
    cli.run(main)


if __name__ == "__main__":
    run()
