"""Small JSON files that other processes read while we may be writing them.

`atomic_write_json` writes to a temporary file beside the destination, flushes it to disk and
renames it over the destination, so a reader (another worker, the experiment runner, a user's
script) sees the old file or the new one, never a truncated one, even if the writer is killed
mid-write.
"""

from __future__ import annotations

import json
import os
from typing import Any


def atomic_write_json(path: str, obj: Any) -> str:
    """Writes `obj` as indented, key-sorted JSON to `path` atomically; returns `path`."""
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    return path


def read_json(path: str) -> Any:
    """The JSON value in `path`, or None when the file does not exist."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)
