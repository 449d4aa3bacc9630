"""`byol-launch` from a clone: launch_local, as `python tools/launch_local.py` (byol_tf/cli/launch.py)."""

import _bootstrap  # noqa: F401  (repo root on sys.path)

from byol_tf.cli.launch import run

if __name__ == "__main__":
    run()
