"""Puts the repository root on sys.path so the tools (and benchmarks/, research/) run from a
plain checkout, and lets byol-tf choose oneDNN before anything imports TensorFlow."""

import os
import sys

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)
# Hide TensorFlow's INFO lines, keep its warnings (a GPU it cannot use says so as a warning).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

import byol_tf  # noqa: E402, F401  (sets the oneDNN default; imports no TensorFlow)
