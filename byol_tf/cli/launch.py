"""Runs a training command as N MultiWorkerMirroredStrategy workers on this machine.

  byol-launch --num_workers=2 -- \
      python tools/train.py --config=configs/default.py:local --workdir=/tmp/mw \
      --config.train.strategy=multi_worker

Each worker gets its own TF_CONFIG on a free 127.0.0.1 port; their output is prefixed with
`[worker i]`. The exit status is 0 only if every worker succeeded. Ctrl-C or SIGTERM asks all
workers to save a checkpoint and stop; rerunning the same command resumes.
"""

import sys

from absl import app, flags

from byol_tf import cli
from byol_tf.distributed import launch

_NUM_WORKERS = flags.DEFINE_integer("num_workers", 2, "Number of worker processes.")
_GRACE = flags.DEFINE_float(
    "grace_seconds", 30.0, "After a worker fails, seconds the others get to stop on their own."
)
_TIMEOUT = flags.DEFINE_float("timeout", None, "Kill every worker after this many seconds.")


def main(argv):
    command = argv[1:]
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise app.UsageError("Give the command to run after `--`.")
    sys.exit(launch.launch(command, _NUM_WORKERS.value, _GRACE.value, _TIMEOUT.value))


def run() -> None:
    """The `byol-launch` command."""
    cli.run(main)


if __name__ == "__main__":
    run()
