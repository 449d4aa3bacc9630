"""Several worker processes on loopback: agreement, preemption and a killed worker.

Each test starts real MultiWorkerMirroredStrategy workers with `byol_tf.distributed.launch` (the same
code path as several machines) running tests/helpers/multiworker_job.py. Faults are injected at a
known step by the job itself, so the expected checkpoints are exact.
"""

import glob
import io
import json
import os
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from byol_tf.distributed import launch
from byol_tf.training import trainer as train
from tests import REPO
from tests.helpers.multiworker_job import job_config

pytestmark = pytest.mark.multiprocess

JOB = os.path.join(REPO, "tests", "helpers", "multiworker_job.py")
TIMEOUT = 150  # seconds per launch; a hang fails the test instead of blocking the suite


def run_workers(workdir, out, *flags, overrides=None, num_workers=2):
    """Runs the job on `num_workers` loopback workers; returns (status, log, seconds).

    The workers' temporary directory is `out/tmp`, so the test can check what they left there.
    """
    command = [sys.executable, JOB, f"--workdir={workdir}", f"--out={out}", *flags]
    if overrides:
        command.append("--overrides=" + json.dumps(overrides))
    os.makedirs(os.path.join(out, "tmp"), exist_ok=True)
    env = dict(os.environ, TMPDIR=os.path.join(out, "tmp"))
    log = io.StringIO()
    start = time.monotonic()
    # The context manager kills every worker even if the test fails half-way.
    with launch.LocalCluster(command, num_workers, env=env, output=log) as cluster:
        status = cluster.wait(grace_seconds=30, timeout=TIMEOUT)
    return status, log.getvalue(), time.monotonic() - start


def worker_leftovers(out):
    """Temporary checkpoint/export directories the non-chief worker did not remove."""
    return glob.glob(os.path.join(out, "tmp", "byol_worker_*"))


def load_weights(out, worker):
    with np.load(os.path.join(out, f"worker{worker}.npz")) as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


def summary(out, worker):
    with open(os.path.join(out, f"worker{worker}.json")) as f:
        return json.load(f)


def checkpoint_steps(workdir):
    state = tf.train.get_checkpoint_state(os.path.join(workdir, "checkpoints"))
    return sorted(int(p.rsplit("-", 1)[1]) for p in state.all_model_checkpoint_paths)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Two workers train the tiny job for its 6 steps without interruption."""
    root = tmp_path_factory.mktemp("uninterrupted")
    workdir, out = root / "run", root / "out"
    status, log, _ = run_workers(workdir, out)
    assert status == 0, log[-4000:]
    return workdir, out


def test_two_workers_end_identical_and_match_two_devices_in_one_process(
    uninterrupted, tmp_path, mirrored_strategy
):
    workdir, out = uninterrupted
    chief, other = load_weights(out, 0), load_weights(out, 1)
    assert len(chief) == len(other) > 20
    for a, b in zip(chief, other):
        np.testing.assert_array_equal(a, b)
    assert summary(out, 0)["steps"] == summary(out, 1)["steps"] == 6
    # Only the chief wrote into the workdir.
    assert checkpoint_steps(workdir) == [6]
    assert os.path.isdir(workdir / "export" / "encoder")
    assert not worker_leftovers(out)  # worker 1 also saved and exported, to deleted temp dirs
    assert len((workdir / "metrics.jsonl").read_text().splitlines()) == 6

    # The same global batch on 2 logical devices of this process (the shared strategy).
    reference = train.Trainer(job_config(), str(tmp_path), strategy=mirrored_strategy)
    reference.fit(stop_at_step=6)
    expected = [v.numpy() for v in reference.online.weights + reference.target.weights]
    assert len(expected) == len(chief)
    for a, b in zip(chief, expected):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5)


def test_sigterm_to_one_worker_saves_everywhere_and_resumes_exactly(uninterrupted, tmp_path):
    workdir, out = tmp_path / "run", tmp_path / "out"
    # A preemption notice to worker 1 only: both workers save step 2 and exit cleanly.
    status, log, _ = run_workers(workdir, out, "--sigterm=1:2", "--no_export")
    assert status == 0, log[-4000:]
    for worker in (0, 1):
        assert summary(out, worker)["preempted"] and summary(out, worker)["steps"] == 2
    assert log.count("Preempted at step 2: checkpoint saved") == 2
    assert checkpoint_steps(workdir) == [2]

    # The same command again resumes at step 2 and ends where the uninterrupted run did.
    status, log, _ = run_workers(workdir, out, "--no_export")
    assert status == 0, log[-4000:]
    assert summary(out, 0)["steps"] == summary(out, 1)["steps"] == 6
    assert not summary(out, 0)["preempted"]
    final = load_weights(out, 0)
    for a, b in zip(final, load_weights(uninterrupted[1], 0)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(final, load_weights(out, 1)):
        np.testing.assert_array_equal(a, b)
    assert checkpoint_steps(workdir) == [2, 6]
    assert not worker_leftovers(out)


def test_a_killed_worker_stops_the_other_with_a_clear_error(tmp_path):
    workdir, out = tmp_path / "run", tmp_path / "out"
    # Checkpoints every 2 steps; worker 0 (the chief) dies at step 5, before any save of it.
    status, log, seconds = run_workers(
        workdir, out, "--sigkill=0:5", overrides={"checkpoint.every_steps": 2}
    )
    assert status == 128 + 9, log[-4000:]
    assert "worker 0 failed (killed by SIGKILL)" in log
    (message,) = [line for line in log.splitlines() if "WorkerFailureError" in line]
    assert message.startswith("[worker 1] WorkerFailureError: Another worker")
    assert "ckpt-4" in message and "relaunch every worker" in message
    assert seconds < TIMEOUT
    # What a relaunch restores: the last periodic checkpoint, intact, at data position 4.
    assert checkpoint_steps(workdir) == [2, 4]
    reader = tf.train.load_checkpoint(str(workdir / "checkpoints" / "ckpt-4"))
    assert int(reader.get_tensor("data_position/step/.ATTRIBUTES/VARIABLE_VALUE")) == 4
    assert not glob.glob(str(workdir / "checkpoints" / "*_temp*"))
    assert not worker_leftovers(out)
