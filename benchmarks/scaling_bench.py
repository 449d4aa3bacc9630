"""Step time against the number of replicas at a fixed per-replica batch (docs/scaling.md).

  python benchmarks/scaling_bench.py --config=configs/default.py --per_replica_batch=32 \
      --steps=20 --warmup=5 --setups=devices:1,devices:2,devices:4,workers:2 \
      --output=scaling_measured.json

`devices:N` is one process with N logical CPU devices (MirroredStrategy); `workers:N` is N
loopback processes (MultiWorkerMirroredStrategy, via byol_tf.distributed.launch). Each setup runs in
fresh processes; the output holds one record per setup (median step time, images/s) and the
machine. `--config.<field>=<value>` overrides are passed to every run.
"""

import json
import os
import sys

import _bootstrap  # noqa: F401  (repo root on sys.path)
from absl import app, flags, logging
from ml_collections import config_flags

from benchmarks.bench import measure
from byol_tf.platform import cpu

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    os.path.join(_bootstrap.REPO_ROOT, "configs", "default.py"),
    "Config file.",
    lock_config=True,
)
_PER_REPLICA = flags.DEFINE_integer("per_replica_batch", 32, "Batch per replica, kept fixed.")
_STEPS = flags.DEFINE_integer("steps", 20, "Timed steps per setup.")
_WARMUP = flags.DEFINE_integer("warmup", 5, "Untimed steps first (tracing, pipeline start).")
_SETUPS = flags.DEFINE_list(
    "setups", ["devices:1", "devices:2", "devices:4", "workers:2"], "Setups to measure."
)
_OUTPUT = flags.DEFINE_string("output", "scaling_measured.json", "Where to write the results.")
# Internal: one measurement in this process.
_RUN_ONE = flags.DEFINE_bool("run_one", False, "Internal: measure one setup in this process.")
_DEVICES = flags.DEFINE_integer("devices", 1, "Internal: logical CPU devices of this process.")
_RECORD = flags.DEFINE_string("record", "", "Internal: where this process writes its record.")


def run_one():
    logging.set_verbosity(logging.WARNING)
    measure.configure_logical_cpus(_DEVICES.value)  # before TensorFlow starts its runtime
    c = _CONFIG.value
    c.train.progress_bar = False
    c.checkpoint.every_steps = 10**9
    c.eval.knn_train = c.eval.knn_test = ""
    # Stop before the schedule ends: no export in the timings.
    c.schedule.total_steps = _WARMUP.value + _STEPS.value + 1
    record = measure.step_time(c, _STEPS.value, _WARMUP.value)
    if record["chief"]:
        with open(_RECORD.value, "w") as f:
            json.dump(record, f)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if _RUN_ONE.value:
        return run_one()
    setups = []
    for setup in _SETUPS.value:
        kind, _, n = setup.partition(":")
        setups.append((kind, int(n)))
    config_file = flags.FLAGS["config"].config_filename
    overrides = [
        a for a in sys.argv[1:] if a.startswith("--config.") and "global_batch_size" not in a
    ]
    passed = [f"--config={config_file}", *overrides]
    passed += [f"--steps={_STEPS.value}", f"--warmup={_WARMUP.value}"]
    records = measure.run_scaling_bench(
        os.path.abspath(__file__), setups, passed, _PER_REPLICA.value
    )
    result = {"command": " ".join(["python", *sys.argv]), "machine": cpu.machine()}
    result["records"] = records
    with open(_OUTPUT.value, "w") as f:
        json.dump(result, f, indent=2)
    print(f"Wrote {_OUTPUT.value}")


if __name__ == "__main__":
    app.run(main)
