"""`byol-finetune` from a clone: finetune, as `python tools/finetune.py` (byol_tf/cli/finetune.py)."""

import _bootstrap  # noqa: F401  (repo root on sys.path)

from byol_tf.cli.finetune import run

if __name__ == "__main__":
    run()
