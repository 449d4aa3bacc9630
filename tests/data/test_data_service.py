"""The tf.data service path: a dispatcher and 2 workers in this process, on loopback."""

import gc
import socket
import threading
import time

import numpy as np
import pytest
import tensorflow as tf

from byol_tf import data
from byol_tf.data import service
from byol_tf.training import trainer as train
from tests.helpers.multiworker_job import job_config


@pytest.fixture(scope="module")
def data_service():
    """A dispatcher and two workers, alive for the module (servers stop when collected)."""
    dispatcher = service.start_dispatcher()
    workers = [service.start_worker(dispatcher.target) for _ in range(2)]
    yield dispatcher.target
    # Dropping the clients first lets the servers' shutdown skip their pending requests; the
    # workers stop concurrently, as each can wait for its tasks to wind down.
    gc.collect()
    stoppers = [threading.Thread(target=worker.stop) for worker in workers]
    for stopper in stoppers:
        stopper.start()
    for stopper in stoppers:
        stopper.join()
    dispatcher.stop()


def batches(ds, n):
    return [{k: v.numpy() for k, v in b.items()} for b in ds.take(n)]


def test_the_service_produces_the_local_batches(data_service):
    # 2 replicas in one pipeline, from step 3 (resumed): the service cuts the stream into steps.
    c = job_config(**{"data.global_batch_size": 8})
    source = data.load_source("synthetic:train", c)
    context = tf.distribute.InputContext(1, 0, 2)
    local = batches(data.pretrain_dataset(source, c, context, start_step=3), 16)  # 8 steps
    c.data.service_address = data_service
    remote = batches(data.pretrain_dataset(source, c, context, start_step=3), 8)  # 4 steps
    # Steps may arrive out of order, but each arrives whole (replica 0 then replica 1) and
    # equal, view for view, to the local pipeline's batches of that step.
    key = lambda b: b["label"].tobytes() + b["view1"][:, 0, 0, 0].tobytes()  # noqa: E731
    position = {key(b): i for i, b in enumerate(local)}
    assert len(position) == 16
    found = [position[key(b)] for b in remote]
    assert len(set(found)) == 8
    for replica0, replica1 in zip(found[0::2], found[1::2]):
        assert replica0 % 2 == 0 and replica1 == replica0 + 1
    for b, i in zip(remote, found):
        for name in ("view1", "view2", "label"):
            np.testing.assert_array_equal(b[name], local[i][name], err_msg=name)


def _key(batch) -> bytes:
    return batch["label"].tobytes() + batch["view1"][:, 0, 0, 0].tobytes()


class RecordingTrainer(train.Trainer):
    """Notes the key of every batch its input pipeline hands over, in order."""

    arrived: list

    def _dataset(self, start_step):
        def note(label, view1):
            self.arrived.append(_key({"label": label.numpy(), "view1": view1.numpy()}))
            return 0

        def record(batch):
            token = tf.py_function(note, [batch["label"], batch["view1"]], tf.int64)
            with tf.control_dependencies([token]):
                return {k: tf.identity(v) for k, v in batch.items()}

        def dataset_fn(context):
            return data.pretrain_dataset(self.source, self.config, context, start_step).map(record)

        self.arrived = []
        return self.strategy.distribute_datasets_from_function(dataset_fn)


class ReplayTrainer(train.Trainer):
    """Trains on the given batches, in the given order."""

    batches: list

    def _dataset(self, start_step):
        stacked = {k: np.stack([b[k] for b in self.batches]) for k in self.batches[0]}
        return self.strategy.distribute_datasets_from_function(
            lambda context: tf.data.Dataset.from_tensor_slices(stacked)
        )


def test_training_through_the_service_matches_training_on_the_local_batches(data_service, tmp_path):
    c = job_config(**{"schedule.total_steps": 4})  # stopped at 3: no end-of-run export
    remote_config = job_config(**{"data.service_address": data_service, "schedule.total_steps": 4})
    remote = RecordingTrainer(remote_config, str(tmp_path / "remote"))
    start = [v.numpy() for v in remote.online.weights]
    summary = remote.fit(stop_at_step=3)
    assert summary["steps"] == 3 and np.isfinite(summary["final_loss"])
    # The service hands out the local pipeline's batches, perhaps out of order (see above): the
    # same steps trained locally in the order they arrived give the same weights.
    local = {_key(b): b for b in batches(data.pretrain_dataset(remote.source, c), 8)}
    replay = ReplayTrainer(c, str(tmp_path / "local"))
    replay.batches = [local[k] for k in remote.arrived[:3]]
    replay.fit(stop_at_step=3)
    pairs = list(zip(start, remote.online.weights, replay.online.weights, strict=True))
    for _, a, b in pairs:
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7, err_msg=a.path)
    assert max(np.abs(s - a.numpy()).max() for s, a, _ in pairs) > 0  # training moved them


def test_a_dispatcher_that_does_not_answer_is_an_error_in_bounded_time():
    # Nothing listens: refused at once.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(service.DispatcherUnavailableError, match=f"127.0.0.1:{port}.*Start one"):
        service.check_dispatcher(f"grpc://127.0.0.1:{port}", timeout_seconds=5)
    assert time.monotonic() - start < 5
    # Something listens but never speaks gRPC (a hung or wrong server): the timeout applies.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(service.DispatcherUnavailableError, match="did not answer within 1 s"):
            service.check_dispatcher(address, timeout_seconds=1)
        assert time.monotonic() - start < 5


def test_the_pipeline_checks_the_dispatcher_before_registering():
    c = job_config(**{"data.service_timeout_seconds": 1.0})
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        c.data.service_address = f"127.0.0.1:{silent.getsockname()[1]}"
        source = data.load_source("synthetic:train", c)
        start = time.monotonic()
        with pytest.raises(service.DispatcherUnavailableError, match=c.data.service_address):
            data.pretrain_dataset(source, c)
        assert time.monotonic() - start < 10


def test_bad_addresses_and_streaming_sources_are_clear_errors():
    with pytest.raises(ValueError, match="grpc://host:port"):
        service.check_dispatcher("http://somewhere:80", 1)
    with pytest.raises(ValueError, match="grpc://host:port"):
        service.check_dispatcher("no-port-here", 1)
    c = job_config(**{"data.service_address": "grpc://127.0.0.1:1"})
    streaming = data.Source("tfds:fake:train", 64, None, reader=object())
    with pytest.raises(ValueError, match="no random access"):
        data.pretrain_dataset(streaming, c)
