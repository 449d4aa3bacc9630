"""When to checkpoint and when to stop, agreed by every worker; clear errors for lost workers.

`RunControl` is consulted by the train loop after every step call. It answers two questions,
the same way on one process and on many:

- save now? when the step crosses a multiple of `checkpoint.every_steps`, or when
  `checkpoint.every_minutes` have passed since the last save (the chief's clock decides);
- stop now? when any worker received SIGTERM (a preemption notice).

With several workers the local answers are summed by one tiny all-reduce per call, so every
worker takes the same decision after the same step: all of them save the same checkpoint and
stop together. This is our equivalent of `tf.distribute.experimental.PreemptionCheckpointHandler`
on TF's own collectives; it is used instead because that class does nothing on GCP CPU or TPU
VMs, replaces SIGTERM by a maintenance-event poll on GCP GPU VMs, restores the checkpoint itself
when built (bypassing our checks of damaged checkpoints) and cannot agree on time-based
checkpoints, which need the same agreement.

After a restore, `restored_steps` gathers every worker's restored step and
`check_restored_steps` stops the run with an error naming them if the workers disagree (a
worker that sees another checkpoint directory, or that could not read the newest checkpoint).

`worker_failure_message` turns the errors a collective raises when a peer dies into a message
that says what happened and how to resume; `explain_failure` picks between that and a lost
tf.data service (`data.service_address`), which raises the same kind of error.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time

import tensorflow as tf
from absl import logging

from byol_tf.data.service import DispatcherUnavailableError
from byol_tf.distributed import strategies as distribute

# What a collective raises when a peer process dies or stops answering.
PEER_FAILURE_ERRORS = (
    tf.errors.UnavailableError,
    tf.errors.AbortedError,
    tf.errors.DeadlineExceededError,
    tf.errors.CancelledError,
)


class WorkerFailureError(RuntimeError):
    """Another worker of a multi-worker run died or stopped answering."""


class CheckpointMismatchError(RuntimeError):
    """The workers of one run restored different checkpoints."""


@dataclasses.dataclass(frozen=True)
class Decision:
    save: bool
    stop: bool


class RunControl:
    """Tells the loop when to save and stop; a context manager that owns the SIGTERM handler.

    Args:
      strategy: the run's strategy; with MultiWorkerMirroredStrategy decisions are agreed.
      every_steps: save when the step crosses a multiple of this.
      every_minutes: also save when this much time passed since the last save (0: off).
      is_chief: only the chief's clock counts for `every_minutes`.
      clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(
        self,
        strategy: tf.distribute.Strategy,
        every_steps: int,
        every_minutes: float = 0.0,
        is_chief: bool = True,
        clock=time.monotonic,
    ):
        self.every_steps = int(every_steps)
        self.every_seconds = float(every_minutes) * 60.0
        self.is_chief = is_chief
        self.clock = clock
        self.sigterm_received = False
        self._last_save = clock()
        self._previous_handler = None
        self._agree = _make_agreement(strategy) if distribute.num_workers(strategy) > 1 else None

    def start(self) -> RunControl:
        """Installs the SIGTERM handler (only the main thread can) and starts the clock."""
        if threading.current_thread() is threading.main_thread():
            self._previous_handler = signal.signal(signal.SIGTERM, self._on_sigterm)
        else:
            logging.warning("Training outside the main thread: SIGTERM will not be handled.")
        self._last_save = self.clock()
        return self

    def close(self) -> None:
        """Puts the previous SIGTERM handler back."""
        if self._previous_handler is not None:
            signal.signal(signal.SIGTERM, self._previous_handler)
            self._previous_handler = None

    def __enter__(self) -> RunControl:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _on_sigterm(self, signum, frame):  # noqa: ARG002
        logging.warning(
            "SIGTERM received: every worker saves a checkpoint after the current step and stops."
        )
        self.sigterm_received = True

    def saved(self) -> None:
        """Call after every checkpoint save: restarts the `every_minutes` clock."""
        self._last_save = self.clock()

    def decide(self, previous_step: int, step: int) -> Decision:
        """Called by every worker after each step call, with the steps before and after it."""
        due_by_steps = step // self.every_steps > previous_step // self.every_steps
        due_by_time = (
            self.is_chief
            and self.every_seconds > 0
            and self.clock() - self._last_save >= self.every_seconds
        )
        stop = self.sigterm_received
        if self._agree is not None:
            # Every worker must take the same decision: sum the votes over the cluster.
            votes = self._agree(tf.constant([int(stop), int(due_by_time)], tf.int32)).numpy()
            stop, due_by_time = bool(votes[0]), bool(votes[1])
        return Decision(save=due_by_steps or due_by_time or stop, stop=stop)


def _make_agreement(strategy: tf.distribute.Strategy):
    @tf.function
    def agree(local_votes):
        # Every replica contributes its worker's votes; any positive sum is a yes.
        per_replica = strategy.run(lambda: tf.identity(local_votes))
        return strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    return agree


def restored_steps(strategy: tf.distribute.Strategy, step: int) -> list[int]:
    """Every worker's `step` (the step it restored, 0 for none), in worker order.

    One all-gather over the replicas; all workers must call it. A worker's replicas hold the
    same value, so one value is kept per worker.
    """
    workers = distribute.num_workers(strategy)
    replicas = strategy.num_replicas_in_sync
    local = tf.constant([int(step)], tf.int64)

    @tf.function
    def gather():
        def replica_fn():
            return tf.distribute.get_replica_context().all_gather(tf.identity(local), axis=0)

        return strategy.experimental_local_results(strategy.run(replica_fn))[0]

    values = gather().numpy().tolist()
    per_worker = max(1, replicas // workers)
    return [int(v) for v in values[::per_worker]]


def check_restored_steps(steps: list[int], checkpoint_dir: str) -> None:
    """Raises CheckpointMismatchError naming each worker's step unless they are all equal."""
    if len(set(steps)) <= 1:
        return
    listed = ", ".join(
        f"worker {i}: step {s}" + (" (no checkpoint)" if s == 0 else "")
        for i, s in enumerate(steps)
    )
    raise CheckpointMismatchError(
        f"The workers restored different checkpoints from {checkpoint_dir} ({listed}), so they "
        "would train different models. Every worker must see the same, shared checkpoint "
        "directory: check that the workdir is on shared storage and readable from every "
        "machine, and read each worker's log for skipped checkpoints; then relaunch."
    )


# Words of TensorFlow's tf.data service client errors (lower case).
_DATA_SERVICE_WORDS = (
    "data service",
    "dispatcher",
    "from worker",
    "failed to get element",
    "getelement",
    "getorcreatejob",
    "clientheartbeat",
)


def _first_line(error: Exception) -> str:
    return next((line for line in str(error).splitlines() if line.strip()), type(error).__name__)


def _resume_from(last_checkpoint: str | None) -> str:
    return (
        f"The last checkpoint is {last_checkpoint}"
        if last_checkpoint
        else "There is no checkpoint yet"
    )


def is_data_service_failure(error: Exception, service_address: str, num_workers: int) -> bool:
    """Whether `error` (one of PEER_FAILURE_ERRORS) means the tf.data service was lost."""
    if not service_address or not isinstance(
        error, (tf.errors.UnavailableError, tf.errors.DeadlineExceededError)
    ):
        return False
    text = str(error).lower()
    host_port = service_address.split("://", 1)[-1].lower()
    if host_port in text or any(word in text for word in _DATA_SERVICE_WORDS):
        return True
    return num_workers == 1  # no peers: only the service can be unavailable


def data_service_failure_message(
    error: Exception, service_address: str, last_checkpoint: str | None
) -> str:
    return (
        f"Lost the tf.data service at {service_address} (data.service_address) during training "
        f"({type(error).__name__}: {_first_line(error)}). Check that its dispatcher and workers "
        "are running and reachable from every trainer (tools/data_service.py starts them). "
        f"{_resume_from(last_checkpoint)}; rerun the same command to resume from it, or clear "
        "data.service_address to run the input pipeline locally."
    )


def explain_failure(
    error: Exception, last_checkpoint: str | None, num_workers: int, service_address: str = ""
) -> Exception | None:
    """The clear error to raise in place of `error` (one of PEER_FAILURE_ERRORS), or None.

    A lost tf.data service gives `DispatcherUnavailableError`, a lost peer of a multi-worker
    run `WorkerFailureError`; in one process without a service, None (keep the original).
    """
    if is_data_service_failure(error, service_address, num_workers):
        return DispatcherUnavailableError(
            data_service_failure_message(error, service_address, last_checkpoint)
        )
    if num_workers > 1:
        return WorkerFailureError(worker_failure_message(error, last_checkpoint))
    return None


def worker_failure_message(error: Exception, last_checkpoint: str | None) -> str:
    first = _first_line(error)
    for line in str(error).splitlines():
        # TF puts the useful part ("...tasks are unhealthy...", "Connection reset by peer") here.
        if "aborted by" in line or "unhealthy" in line:
            first = line.strip()
            break
    return (
        f"Another worker of this multi-worker run died or stopped answering, so training cannot "
        f"continue ({type(error).__name__}: {first}). {_resume_from(last_checkpoint)}; relaunch every worker with the "
        "same command to resume from it (check the failed worker's log for its own error first)."
    )
