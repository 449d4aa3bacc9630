"""BYOL pretraining from the command line.

  byol-train [--config=<name>[:arg] | <path>.py[:arg]] [--workdir=<dir>] [--config.<field>=<value> ...]

With no flags it runs configs/default.py in workdirs/default. Restarting with the same
workdir resumes from the latest checkpoint; a config that differs from the workdir's
config.json is an error naming the fields, unless --overwrite is given.
"""

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

from byol_tf import cli
from byol_tf.data.service import DispatcherUnavailableError
from byol_tf.distributed import faults
from byol_tf.training import trainer as train
from byol_tf.training import workdir

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    cli.config_file("default"),
    "Config file.",
    lock_config=True,
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (default: workdirs/<config name>).")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite",
    False,
    "Continue the workdir's run with this config even if it differs from its config.json.",
)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    # TF's INFO lines (SavedModel writing, sharding) drown the progress bar; --verbosity=0 restores them.
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    config_path = flags.FLAGS["config"].config_filename
    name = os.path.splitext(os.path.basename(config_path))[0]
    workdir_path = _WORKDIR.value or os.path.join("workdirs", name)
    try:
        summary = train.train_and_evaluate(_CONFIG.value, workdir_path, _OVERWRITE.value)
    except (
        workdir.ConfigMismatchError,
        faults.WorkerFailureError,
        DispatcherUnavailableError,
    ) as e:
        # Expected failures: the message says what to do; a traceback would only bury it.
        print(f"Error: {e}", file=sys.stderr)
        sys.exit(2 if isinstance(e, workdir.ConfigMismatchError) else 1)
    print(
        f"\nTrained {summary['steps']} steps ({summary['epochs']:.2f} epochs), final loss "
        f"{summary['final_loss']:.4f}, {summary['images_per_s']:.1f} images/s."
    )
    if summary.get("export_dir"):
        print(f"Encoder exported to {summary['export_dir']}")
    if "knn_top1_learned" in summary:
        print(
            f"kNN top-1 (k={_CONFIG.value.eval.knn_k}) on {_CONFIG.value.eval.knn_test}: "
            f"learned encoder {100 * summary['knn_top1_learned']:.1f}%, "
            f"random-initialised encoder {100 * summary['knn_top1_random']:.1f}%"
            + (
                f" (BatchNorm statistics estimated on the training views; with Keras's "
                f"placeholder statistics {100 * summary['knn_top1_random_init_stats']:.1f}%)"
                if "knn_top1_random_init_stats" in summary
                else ""
            )
        )
    if "probe_top1" in summary:
        print(
            f"Online linear probe top-1 on the last training batch: {100 * summary['probe_top1']:.1f}%"
        )
    if summary.get("summary_path"):  # only the chief writes it
        print(f"Summary: {summary['summary_path']}")


def run() -> None:
    """The `byol-train` command."""
    cli.run(main)


if __name__ == "__main__":
    run()
