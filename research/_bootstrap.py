"""Puts the repository root on sys.path (tools/_bootstrap.py), so the scripts here run from a
clone."""

import os
import runpy

REPO_ROOT = runpy.run_path(
    os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "_bootstrap.py"
    )
)["REPO_ROOT"]
