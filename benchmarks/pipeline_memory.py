"""Peak memory of the input pipeline alone (no model): open the source, iterate batches.

  python benchmarks/pipeline_memory.py --config=configs/cifar10.py \
      --config.data.train=folder:/work/data/cifar10/train --output=/tmp/mem_stream.json
  python benchmarks/pipeline_memory.py --config=configs/cifar10.py \
      --config.data.train=folder:/work/data/cifar10/train --config.data.cache=true \
      --output=/tmp/mem_cache.json

Run each in its own process (a process's peak never goes down). By default it iterates one
epoch; prints one JSON record (baseline and peak resident memory in MB, throughput, machine).
"""

import json
import os

import _bootstrap  # noqa: F401  (repo root on sys.path)
from absl import app, flags
from ml_collections import config_flags

from benchmarks.bench import measure

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    os.path.join(_bootstrap.REPO_ROOT, "configs", "cifar10.py"),
    "Config file.",
    lock_config=True,
)
_BATCHES = flags.DEFINE_integer("batches", 0, "Batches to iterate (0: one epoch).")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the JSON record here.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    record = measure.input_pipeline_memory(_CONFIG.value, _BATCHES.value)
    text = json.dumps(record, indent=2)
    print(text)
    if _OUTPUT.value:
        with open(_OUTPUT.value, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    app.run(main)
