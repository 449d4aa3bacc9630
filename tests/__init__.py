"""The test suite; its folders mirror the package's (docs/design.md)."""

import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
