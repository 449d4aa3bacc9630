"""Puts the repository root on sys.path so the tools run from a plain checkout."""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
# Hide TensorFlow's INFO lines, keep its warnings (a GPU it cannot use says so as a warning).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
