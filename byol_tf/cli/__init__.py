"""The commands: `byol-train`, `byol-export`, `byol-linear-eval`, `byol-knn-eval`,
`byol-finetune`, `byol-plot`, `byol-launch`, `byol-data-service` (pyproject.toml), also run
from a clone as `python tools/<name>.py`.

Only the commands set process state: TensorFlow's log level (INFO hidden, warnings kept),
and `--config` resolved by name among the packaged configs (`--config=cifar10_cpu` or
`--config=imagenet.py:100`) when it is not a path to a file.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

# Before TensorFlow loads: hide its INFO lines, keep its warnings (a GPU it cannot use says so).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

CONFIGS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def config_file(name: str) -> str:
    """The packaged config `name` (`default`, `default.py`), as a path."""
    return os.path.join(CONFIGS_DIR, name if name.endswith(".py") else f"{name}.py")


def resolve_config(spec: str) -> str:
    """`spec` (`path[:arg]`) with the path replaced by a packaged config's when no such file
    exists but a packaged config has that name. Anything else is returned unchanged, so the
    config flag reports a missing file as it always did."""
    file, sep, arg = spec.partition(":")
    if os.path.exists(file) or os.sep in file.rstrip(os.sep):
        return spec
    packaged = config_file(file)
    return packaged + sep + arg if os.path.exists(packaged) else spec


def resolve_config_flags(argv: list[str]) -> list[str]:
    """`argv` with every `--config=<spec>` (not `--config.<field>=`) resolved."""
    out = []
    for arg in argv:
        if arg.startswith("--config="):
            arg = "--config=" + resolve_config(arg[len("--config=") :])
        out.append(arg)
    return out


def run(main: Callable[[list[str]], None]) -> None:
    """Runs an absl `main` as a command."""
    from absl import app

    sys.argv = resolve_config_flags(sys.argv)
    app.run(main)
