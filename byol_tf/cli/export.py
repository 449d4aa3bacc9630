"""Exports the online encoder of any checkpoint in a workdir as a SavedModel (+ .keras).

  byol-export --workdir=<run dir> --output=<dir> [--checkpoint=<path>]

The run's config is read from `<workdir>/config.json`, so the architecture matches.
"""

from absl import flags

from byol_tf import cli
from byol_tf.training import export

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory with checkpoints/ and config.json.")
_OUTPUT = flags.DEFINE_string("output", None, "Where to write the SavedModel.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "A specific checkpoint (default: latest).")
flags.mark_flags_as_required(["workdir", "output"])


def main(argv):
    del argv
    path, step = export.export_from_workdir(_WORKDIR.value, _OUTPUT.value, _CHECKPOINT.value)
    print(f"Exported the online encoder of step {step} to {path}")


def run() -> None:
    """The `byol-export` command."""
    cli.run(main)


if __name__ == "__main__":
    run()
