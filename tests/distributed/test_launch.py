"""byol_tf.distributed.launch and tools/launch_local.py, with stand-in worker commands (no TensorFlow)."""

import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from byol_tf.distributed import launch
from tests import REPO

# A stand-in worker: prints its TF_CONFIG task, then behaves as told by argv[1] per index.
WORKER = r"""
import json, os, signal, sys, time
task = json.loads(os.environ["TF_CONFIG"])["task"]
i = task["index"]
print("index", i, "cluster", json.loads(os.environ["TF_CONFIG"])["cluster"]["worker"], flush=True)
plan = json.loads(sys.argv[1]).get(str(i), "ok")
if plan == "ok":
    sys.exit(0)
if plan.startswith("exit"):
    time.sleep(0.3)
    sys.exit(int(plan[4:]))
if plan == "sigkill":
    time.sleep(0.3)
    os.kill(os.getpid(), signal.SIGKILL)
if plan == "hang":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a worker stuck in a collective ignores it
    time.sleep(600)
if plan == "term":
    def stop(signum, frame):
        print("saving and stopping", flush=True)
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    time.sleep(600)
"""


def worker_command(plan: dict) -> list[str]:
    return [sys.executable, "-c", WORKER, json.dumps(plan)]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_free_ports_and_tf_configs():
    ports = launch.free_ports(4)
    assert len(set(ports)) == 4 and all(0 < p < 65536 for p in ports)
    configs = launch.tf_configs(["127.0.0.1:1", "127.0.0.1:2"])
    assert [c["task"] for c in configs] == [
        {"type": "worker", "index": 0},
        {"type": "worker", "index": 1},
    ]
    assert configs[0]["cluster"] == {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}


def test_each_worker_gets_its_tf_config_and_a_prefixed_log():
    out = io.StringIO()
    assert launch.launch(worker_command({}), 3, output=out, timeout=60) == 0
    lines = out.getvalue().splitlines()
    for i in range(3):
        (line,) = [x for x in lines if x.startswith(f"[worker {i}] index")]
        assert line.startswith(f"[worker {i}] index {i} cluster ['127.0.0.1:")
    addresses = [x for x in lines if "cluster" in x][0].split("cluster ")[1]
    assert len(set(eval(addresses))) == 3  # noqa: S307  (three distinct ports)


def test_a_failed_worker_fails_the_job_and_the_others_are_stopped_in_bounded_time():
    out = io.StringIO()
    cluster = launch.LocalCluster(worker_command({"0": "hang", "1": "exit3"}), 2, output=out)
    start = time.monotonic()
    with cluster:
        status = cluster.wait(grace_seconds=1.0, timeout=60)
    elapsed = time.monotonic() - start
    assert status == 3
    assert elapsed < 20, elapsed
    assert cluster.processes[0].returncode == -signal.SIGKILL  # the hanging one was killed
    assert "worker 1 failed (exit status 3)" in out.getvalue()
    assert not any(alive(p.pid) for p in cluster.processes)


def test_a_worker_killed_by_sigkill_gives_137():
    out = io.StringIO()
    status = launch.launch(
        worker_command({"1": "sigkill", "0": "hang"}), 2, grace_seconds=1.0, output=out, timeout=60
    )
    assert status == 128 + signal.SIGKILL
    assert "worker 1 failed (killed by SIGKILL)" in out.getvalue()


def test_no_worker_outlives_the_cluster_on_error():
    cluster = launch.LocalCluster(
        worker_command({"0": "hang", "1": "hang"}), 2, output=io.StringIO()
    )
    with pytest.raises(RuntimeError), cluster:
        raise RuntimeError("the caller failed")
    assert not any(alive(p.pid) for p in cluster.processes)


def test_launch_local_forwards_sigterm_and_returns_the_workers_status(tmp_path):
    tool = subprocess.Popen(
        [
            sys.executable,
            os.path.join(REPO, "tools", "launch_local.py"),
            "--num_workers=2",
            "--",
            *worker_command({"0": "term", "1": "term"}),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        seen = []
        for line in tool.stdout:
            seen.append(line)
            if sum("ready" in x for x in seen) == 2:
                break
        tool.send_signal(signal.SIGTERM)
        rest, _ = tool.communicate(timeout=60)
    finally:
        tool.kill()
    text = "".join(seen) + rest
    assert tool.returncode == 0, text
    assert "[worker 0] saving and stopping" in text and "[worker 1] saving and stopping" in text


def test_launch_local_without_a_command_is_a_usage_error():
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "tools", "launch_local.py"), "--num_workers=2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "after `--`" in result.stderr
