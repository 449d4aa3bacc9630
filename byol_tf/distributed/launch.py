"""Runs one command as N MultiWorkerMirroredStrategy workers on this machine (loopback).

`launch(command, num_workers)` picks free 127.0.0.1 ports, starts one process per worker with
its own `TF_CONFIG`, streams every line of their output prefixed with `[worker i]`, and waits.
When a worker fails, the others get `grace_seconds` to notice on their own (their collectives
and heartbeats fail with a clear error) and are then killed, so a dead peer never leaves the
job hanging. SIGTERM or SIGINT to the launcher is passed on to every worker as SIGTERM, which
byol-tf treats as a preemption: all workers save a checkpoint at the same step and exit.

This is the same code path as several machines; there each machine gets the TF_CONFIG that
`tf_configs` builds, with real host names instead of 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from typing import TextIO

LOOPBACK = "127.0.0.1"
_POLL_SECONDS = 0.05


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """`count` distinct TCP ports that were free on `host` a moment ago."""
    sockets = []
    try:
        # All sockets stay open until every port is chosen, so no port is handed out twice.
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_configs(addresses: Sequence[str]) -> list[dict]:
    """The TF_CONFIG of each worker of a cluster of `addresses` ("host:port"); worker 0 is chief."""
    cluster = {"worker": list(addresses)}
    return [
        {"cluster": cluster, "task": {"type": "worker", "index": i}} for i in range(len(addresses))
    ]


def _describe(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit status {returncode}"


class LocalCluster:
    """N worker processes of one command; use as a context manager so none outlives it."""

    def __init__(
        self,
        command: Sequence[str],
        num_workers: int,
        env: dict[str, str] | None = None,
        output: TextIO | None = None,
        cwd: str | None = None,
    ):
        if num_workers < 1:
            raise ValueError(f"num_workers={num_workers} must be at least 1.")
        if not command:
            raise ValueError("No command to launch: pass it after `--`.")
        self.command = list(command)
        self.num_workers = num_workers
        self.output = output or sys.stdout
        self.addresses = [f"{LOOPBACK}:{p}" for p in free_ports(num_workers)]
        self.configs = tf_configs(self.addresses)
        self._env = dict(os.environ if env is None else env)
        self._cwd = cwd
        self._lock = threading.Lock()
        self.processes: list[subprocess.Popen] = []
        self._readers: list[threading.Thread] = []

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.kill()

    def start(self) -> None:
        for i, tf_config in enumerate(self.configs):
            env = dict(self._env, TF_CONFIG=json.dumps(tf_config), PYTHONUNBUFFERED="1")
            # Each worker leads its own process group, so stopping it also stops anything it
            # started, and a Ctrl-C in the terminal reaches the launcher only (which forwards it).
            process = subprocess.Popen(
                self.command,
                env=env,
                cwd=self._cwd,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            self.processes.append(process)
            reader = threading.Thread(target=self._stream, args=(i, process), daemon=True)
            reader.start()
            self._readers.append(reader)

    def _stream(self, index: int, process: subprocess.Popen) -> None:
        prefix = f"[worker {index}] "
        for raw in iter(process.stdout.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self.say(prefix + line)
        process.stdout.close()

    def say(self, line: str) -> None:
        with self._lock:
            self.output.write(line + "\n")
            self.output.flush()

    def signal_all(self, signum: int) -> None:
        for process in self.processes:
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signum)
                except ProcessLookupError:
                    pass

    def kill(self) -> None:
        """SIGKILLs every worker still running (and its process group) and reaps them."""
        self.signal_all(signal.SIGKILL)
        for process in self.processes:
            process.wait()
        for reader in self._readers:
            reader.join(timeout=5)

    def wait(self, grace_seconds: float = 30.0, timeout: float | None = None) -> int:
        """Waits for every worker; returns 0 if all succeeded, else the first failure's status.

        After the first failure the others have `grace_seconds` to exit before they are killed.
        With `timeout`, workers still running after that many seconds are killed too.
        """
        start = time.monotonic()
        deadline = None if timeout is None else start + timeout
        first_failure: tuple[int, int] | None = None
        kill_at = None
        while True:
            codes = [p.poll() for p in self.processes]
            for i, code in enumerate(codes):
                if code not in (None, 0) and first_failure is None:
                    first_failure = (i, code)
                    self.say(
                        f"[launcher] worker {i} failed ({_describe(code)}); stopping the others "
                        f"within {grace_seconds:g} s."
                    )
                    kill_at = time.monotonic() + grace_seconds
            if all(code is not None for code in codes):
                break
            now = time.monotonic()
            if kill_at is not None and now >= kill_at:
                self.say("[launcher] grace period over: killing the remaining workers.")
                self.kill()
                continue
            if deadline is not None and now >= deadline and kill_at is None:
                self.say(f"[launcher] timeout of {timeout:g} s reached: killing every worker.")
                first_failure = first_failure or (-1, 124)
                self.kill()
                continue
            time.sleep(_POLL_SECONDS)
        for reader in self._readers:
            reader.join(timeout=5)
        if first_failure is None:
            return 0
        code = first_failure[1]
        return 128 - code if code < 0 else code


def launch(
    command: Sequence[str],
    num_workers: int,
    grace_seconds: float = 30.0,
    timeout: float | None = None,
    env: dict[str, str] | None = None,
    output: TextIO | None = None,
    cwd: str | None = None,
) -> int:
    """Runs `command` as `num_workers` loopback workers; returns 0 if every worker succeeded.

    Otherwise returns the exit status of the first worker that failed (128 + N if it was killed
    by signal N). SIGTERM/SIGINT to this process is forwarded to the workers as SIGTERM; a
    second one kills them.
    """
    cluster = LocalCluster(command, num_workers, env=env, output=output, cwd=cwd)
    received = []

    def forward(signum, frame):  # noqa: ARG001
        received.append(signum)
        if len(received) == 1:
            cluster.say(
                f"[launcher] {signal.Signals(signum).name}: asking every worker to save a "
                "checkpoint and stop."
            )
            cluster.signal_all(signal.SIGTERM)
        else:
            cluster.signal_all(signal.SIGKILL)

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {}
    if in_main_thread:
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, forward)
    try:
        with cluster:
            cluster.say(f"[launcher] {num_workers} workers: {', '.join(cluster.addresses)}")
            return cluster.wait(grace_seconds=grace_seconds, timeout=timeout)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
