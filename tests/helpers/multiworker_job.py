"""One worker of the multi-process tests: trains the tiny config and writes its weights.

  python tests/helpers/multiworker_job.py --workdir=W --out=O [--overrides=JSON]
      [--sigterm=WORKER:STEP] [--sigkill=WORKER:STEP] [--no_export]

Run by `byol_tf.distributed.launch` (which sets TF_CONFIG), or without TF_CONFIG for a single-process
reference. At the end each worker writes its online and target weights to
`O/worker<i>.npz` and its summary to `O/worker<i>.json`. `--sigterm` / `--sigkill` make the
named worker send that signal to itself after the given step, so faults land at a known step.
`--no_export` skips the end-of-training export (it only costs time when not under test).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from byol_tf import config as config_lib  # noqa: E402


def job_config(**overrides):
    """ResNet-18 of base width 4 on 16 px synthetic shapes, global batch 8, 6 steps."""
    c = config_lib.load_config(os.path.join(REPO, "configs", "default.py") + ":local")
    c.data.synthetic.num_train = 32
    c.data.global_batch_size = 8
    c.data.image_size = 16
    c.model.base_width = 4
    c.model.norm = "sync_batch"  # statistics over the global batch, as in the paper
    c.model.projector.update(hidden_dim=16, output_dim=8)
    c.model.predictor.update(hidden_dim=16, output_dim=8)
    c.schedule.total_steps = 6
    c.schedule.warmup_epochs = 0
    c.optimizer.base_lr = 0.5
    c.train.deterministic_ops = True
    c.train.log_every_steps = 1
    c.train.progress_bar = False
    c.checkpoint.every_steps = 1000
    c.eval.knn_train = ""
    c.eval.knn_test = ""
    c.update_from_flattened_dict(overrides)
    return c


def task_index() -> int:
    raw = os.environ.get("TF_CONFIG")
    return json.loads(raw)["task"]["index"] if raw else 0


class SignalAtStep(keras.callbacks.Callback):
    def __init__(self, signum: int, step: int):
        super().__init__()
        self.signum, self.step = signum, step

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.step:
            os.kill(os.getpid(), self.signum)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--overrides", default="{}")
    parser.add_argument("--sigterm", default="")
    parser.add_argument("--sigkill", default="")
    parser.add_argument("--no_export", action="store_true")
    args = parser.parse_args()

    from byol_tf.distributed import faults
    from byol_tf.training import trainer as train

    overrides = json.loads(args.overrides)
    if os.environ.get("TF_CONFIG"):
        overrides.setdefault("train.strategy", "multi_worker")
    config = job_config(**overrides)
    me = task_index()
    callbacks = []
    for spec, signum in ((args.sigterm, signal.SIGTERM), (args.sigkill, signal.SIGKILL)):
        if spec:
            worker, step = (int(x) for x in spec.split(":"))
            if worker == me:
                callbacks.append(SignalAtStep(signum, step))
    trainer = train.Trainer(config, args.workdir)
    trainer.exporter.enabled = not args.no_export
    try:
        summary = trainer.fit(callbacks=callbacks)
    except faults.WorkerFailureError as e:
        print(f"WorkerFailureError: {e}", flush=True)
        return 3
    os.makedirs(args.out, exist_ok=True)
    weights = [v.numpy() for v in trainer.online.weights + trainer.target.weights]
    np.savez(os.path.join(args.out, f"worker{me}.npz"), *weights)
    with open(os.path.join(args.out, f"worker{me}.json"), "w") as f:
        json.dump({k: summary[k] for k in ("steps", "preempted", "final_loss")}, f)
    print(f"worker {me} done at step {summary['steps']}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
