"""Prints the on-paper scaling table of docs/scaling.md (no training, nothing measured).

  python benchmarks/scaling_model.py --config=configs/imagenet.py --devices=8,64,512

Builds the configured towers to count parameters, synchronised BatchNorm layers and FLOPs,
then models the step time on each number of accelerators under the hardware assumptions
given by the flags (defaults in benchmarks/bench/scaling.py).
"""

import dataclasses
import os

import _bootstrap  # noqa: F401  (repo root on sys.path)
from absl import app, flags
from ml_collections import config_flags

from benchmarks.bench import scaling as scaling_model

_CONFIG = config_flags.DEFINE_config_file(
    "config",
    os.path.join(_bootstrap.REPO_ROOT, "configs", "imagenet.py"),
    "Config file.",
    lock_config=True,
)
_DEVICES = flags.DEFINE_list("devices", ["8", "64", "512"], "Numbers of accelerators.")
_DEFAULTS = scaling_model.Assumptions()
_ASSUME = {
    field.name: flags.DEFINE_float(
        field.name, getattr(_DEFAULTS, field.name), f"Assumption: {field.name}."
    )
    for field in dataclasses.fields(scaling_model.Assumptions)
}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")

    c = _CONFIG.value
    c.train.precision = "float32"  # counting only; bf16 changes neither counts nor FLOPs
    assumptions = scaling_model.Assumptions(
        **{k: type(getattr(_DEFAULTS, k))(v.value) for k, v in _ASSUME.items()}
    )
    counts = scaling_model.architecture_counts(c)
    sync = c.model.norm == "sync_batch"
    step = scaling_model.per_step(counts, c.data.global_batch_size, sync)
    print(
        f"config: {c.model.encoder}, {c.data.image_size} px, batch {c.data.global_batch_size}, "
        f"norm {c.model.norm}"
    )
    print(f"counts: {counts}")
    print(
        f"per step: {step['flops'] / 1e12:.1f} TFLOP, {step['bn_collectives']} BatchNorm "
        f"all-reduces ({step['bn_bytes'] / 1e3:.0f} kB)"
    )
    print(f"assumptions: {assumptions}\n")
    keys = [
        "devices",
        "hosts",
        "per_device_batch",
        "gradient_mb",
        "ring_mb_per_device",
        "compute_ms",
        "all_reduce_ms",
        "sync_bn_ms",
        "step_ms",
        "comm_efficiency",
        "efficiency",
    ]
    print("| " + " | ".join(keys) + " |")
    print("|" + " --- |" * len(keys))
    for n in _DEVICES.value:
        row = scaling_model.estimate(counts, int(n), c.data.global_batch_size, sync, assumptions)
        print(
            "| "
            + " | ".join(
                f"{row[k]:.3g}" if isinstance(row[k], float) else str(row[k]) for k in keys
            )
            + " |"
        )


if __name__ == "__main__":
    app.run(main)
