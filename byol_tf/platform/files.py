"""Every file a run writes or reads in its workdir, on a local disk or in a bucket.

Paths with a scheme (`gs://bucket/run`, `s3://`, `ram://` in tests) go through TensorFlow's
filesystems (`tf.io.gfile`); local paths through Python's own calls, which also let a JSON write
be flushed to disk before it is renamed over the old file.

`atomic_write_json` writes to a temporary file beside the destination and renames it over the
destination, so a reader (another worker, the experiment runner, a user's script) sees the old
file or the new one, never a truncated one, even if the writer is killed mid-write. On object
stores a rename is a copy, and an object is only visible once its upload completes, which gives
readers the same guarantee.
"""

from __future__ import annotations

import glob as glob_lib
import json
import os
import shutil
from typing import IO, Any


def _gfile():
    # Imported on first use: local paths, and the tools that only read them, need no TF.
    import tensorflow as tf

    return tf.io.gfile


def is_remote(path: str) -> bool:
    """True for paths TensorFlow's filesystems must handle (`gs://...`, `ram://...`)."""
    return "://" in path


def exists(path: str) -> bool:
    return _gfile().exists(path) if is_remote(path) else os.path.exists(path)


def isdir(path: str) -> bool:
    return _gfile().isdir(path) if is_remote(path) else os.path.isdir(path)


def makedirs(path: str) -> None:
    if is_remote(path):
        _gfile().makedirs(path)
    else:
        os.makedirs(path, exist_ok=True)


def open_file(path: str, mode: str = "r") -> IO:
    """A file object for `path` (text modes "r", "w", "a"; binary with "b")."""
    return _gfile().GFile(path, mode) if is_remote(path) else open(path, mode)  # noqa: SIM115


def remove(path: str) -> None:
    """Removes a file, or a directory and everything in it; a missing path is not an error."""
    if not exists(path):
        return
    if is_remote(path):
        import tensorflow as tf

        try:
            if _gfile().isdir(path):
                _gfile().rmtree(path)
            else:
                _gfile().remove(path)
        except tf.errors.NotFoundError:  # gone meanwhile, or only a prefix of other names
            pass
    elif os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        os.remove(path)


def rename(source: str, destination: str) -> None:
    """Moves `source` to `destination`, replacing a file there (a directory must not exist)."""
    if is_remote(source):
        _gfile().rename(source, destination, overwrite=True)
    else:
        os.replace(source, destination)


def list_matching(directory: str, pattern: str) -> list[str]:
    """Paths in `directory` whose names match the glob `pattern` (the directory taken literally)."""
    if is_remote(directory):
        return _gfile().glob(os.path.join(directory, pattern))
    return glob_lib.glob(os.path.join(glob_lib.escape(directory), pattern))


def atomic_write_json(path: str, obj: Any) -> str:
    """Writes `obj` as indented, key-sorted JSON to `path` atomically; returns `path`."""
    tmp = f"{path}.tmp"
    try:
        with open_file(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            if not is_remote(path):
                os.fsync(f.fileno())
        rename(tmp, path)
    except BaseException:
        if exists(tmp):
            remove(tmp)
        raise
    return path


def read_json(path: str) -> Any:
    """The JSON value in `path`, or None when the file does not exist."""
    if not exists(path):
        return None
    with open_file(path) as f:
        return json.load(f)
