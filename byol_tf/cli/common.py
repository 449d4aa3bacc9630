"""What the downstream tools share: their source and output flags, and how they report.

`evaluation_main` is the whole entry point of a tool that evaluates an encoder (or, with
--random_init, its random-initialised twin) with one `run_*` function of byol_tf.evaluation.
"""

import json
from collections.abc import Callable

from absl import app, flags, logging
from ml_collections import config_flags

from byol_tf import cli
from byol_tf.evaluation.report import summary_line, write_report

ENCODER = flags.DEFINE_string("encoder", None, "The exported encoder (SavedModel directory).")
TRAIN = flags.DEFINE_string("train", None, "Labelled train source (same syntax as training).")
TEST = flags.DEFINE_string("test", None, "Labelled source to report accuracy on.")
OUTPUT = flags.DEFINE_string("output", None, "Where to write the JSON report (default: print).")
flags.mark_flags_as_required(["encoder", "train", "test"])


def quiet_tensorflow() -> None:
    # TF's INFO lines drown the summary; --verbosity=0 brings them back.
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)


def finish(report: dict) -> None:
    """Prints the one-line summary, then writes the report to --output or prints it."""
    print(summary_line(report))
    if OUTPUT.value:
        print(f"Report: {write_report(report, OUTPUT.value)}")
    else:
        print(json.dumps(report, indent=2, sort_keys=True))


def define_config(name: str):
    """The --config flag, defaulting to the packaged configs/<name>.py, locked against misspelled fields."""
    default = cli.config_file(name)
    return config_flags.DEFINE_config_file("config", default, "Config file.", lock_config=True)


def evaluation_main(config_name: str, run: Callable) -> Callable:
    """The `main` of a tool that calls `run(encoder, train, test, config, random_init=...)`,
    which returns an object with a `report`. Defines --config and --random_init."""
    config = define_config(config_name)
    random_init = flags.DEFINE_bool("random_init", False, "Evaluate a random-initialised twin.")

    def main(argv):
        if len(argv) > 1:
            raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
        quiet_tensorflow()
        result = run(
            ENCODER.value, TRAIN.value, TEST.value, config.value, random_init=random_init.value
        )
        finish(result.report)

    return main
