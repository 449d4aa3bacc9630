"""What the downstream tools share: their source and output flags, and how they report."""

import json

from absl import flags, logging

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
