"""Measures byol-tf's throughput, FLOP rate and memory on this machine; writes JSON.

  python benchmarks/benchmark.py --config=configs/benchmark.py:w64_b256 --output=bench.json \
      [--parts=matmul,train_step,augment,augmented_step,end_to_end] \
      [--end_to_end=folder:/data/cifar10/train] [--warmup=2 --windows=5 --calls=3]

Run one benchmark at a time: two at once on the same cores corrupt both. See
benchmarks/bench/step.py for what each part times, and docs/performance.md for results.
"""

import json
import os

import _bootstrap  # noqa: F401  (repo root on sys.path)
from absl import app, flags, logging
from ml_collections import config_flags

from benchmarks.bench import step as benchmark

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    os.path.join(_bootstrap.REPO_ROOT, "configs", "benchmark.py"),
    "Config file (the model, batch and switches measured).",
    lock_config=True,
)
_OUTPUT = flags.DEFINE_string("output", None, "JSON file to write (also printed).")
_PARTS = flags.DEFINE_list("parts", list(benchmark.PARTS), "Which measurements to run.")
_END_TO_END = flags.DEFINE_string(
    "end_to_end", "", "Source for the end_to_end part (default: config.data.train)."
)
_WARMUP = flags.DEFINE_integer("warmup", 2, "Untimed calls before timing (tracing included).")
_WINDOWS = flags.DEFINE_integer("windows", 5, "Timed windows; rates are their median.")
_CALLS = flags.DEFINE_integer("calls", 3, "Step calls per timed window.")
_TAG = flags.DEFINE_string("tag", "", "Free text stored in the JSON (e.g. the experiment).")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    report = benchmark.run_benchmark(
        _CONFIG.value,
        parts=tuple(_PARTS.value),
        end_to_end_source=_END_TO_END.value,
        timing=benchmark.Timing(_WARMUP.value, _WINDOWS.value, _CALLS.value),
    )
    report["config"] = flags.FLAGS["config"].config_filename
    report["tag"] = _TAG.value
    text = json.dumps(report, indent=2, sort_keys=True)
    if _OUTPUT.value:
        with open(_OUTPUT.value, "w") as f:
            f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    app.run(main)
