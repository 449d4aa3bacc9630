"""`byol-export` from a clone: export_encoder, as `python tools/export_encoder.py` (byol_tf/cli/export.py)."""

import _bootstrap  # noqa: F401  (repo root on sys.path)

from byol_tf.cli.export import run

if __name__ == "__main__":
    run()
