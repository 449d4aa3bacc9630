"""`byol-data-service` from a clone: data_service, as `python tools/data_service.py` (byol_tf/cli/data_service.py)."""

import _bootstrap  # noqa: F401  (repo root on sys.path)

from byol_tf.cli.data_service import run

if __name__ == "__main__":
    run()
