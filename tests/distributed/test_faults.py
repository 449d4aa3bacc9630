"""Surviving faults in one process: damaged checkpoints, the data position, workdir hygiene,
when to save and stop, and clear errors for a bad TF_CONFIG."""

import json
import logging
import math
import os
import shutil

import keras
import pytest
import tensorflow as tf

from byol_tf.distributed import faults
from byol_tf.distributed import strategies as distribute
from byol_tf.platform import cpu
from byol_tf.training import trainer as train
from byol_tf.training import workdir
from byol_tf.training.checkpoints import Checkpointer, DataPosition
from tests import REPO
from tests.helpers.multiworker_job import job_config

# --- Checkpoints ---------------------------------------------------------------------------------


def make_checkpointer(directory, steps_per_epoch=4, value=0.0):
    layer = keras.layers.Dense(2, kernel_initializer="zeros", name="dense")
    layer.build((None, 3))
    layer.kernel.assign(tf.fill([3, 2], value))
    position = DataPosition(steps_per_epoch, global_batch_size=8)
    return Checkpointer(str(directory), max_to_keep=5, position=position, model=layer), layer


def saved_at(directory, steps):
    """Checkpoints at `steps`, the kernel filled with the step number in each."""
    checkpointer, layer = make_checkpointer(directory)
    for step in steps:
        layer.kernel.assign(tf.fill([3, 2], float(step)))
        checkpointer.save(step)
    return checkpointer


def restored_value(directory, caplog, steps_per_epoch=4):
    checkpointer, layer = make_checkpointer(directory, steps_per_epoch, value=-1.0)
    with caplog.at_level(logging.WARNING):
        path = checkpointer.restore()
    return path, float(layer.kernel.numpy()[0, 0]), checkpointer


def test_uncommitted_checkpoint_files_are_ignored_and_removed(tmp_path, caplog):
    saved_at(tmp_path, [1, 2])
    # A save of step 3 that died after writing its files but before the state file named it,
    # and a save of step 4 that died while writing its data.
    for suffix in (".index", ".data-00000-of-00001"):
        shutil.copy(tmp_path / f"ckpt-2{suffix}", tmp_path / f"ckpt-3{suffix}")
    (tmp_path / "ckpt-4_temp").mkdir()
    (tmp_path / "ckpt-4_temp" / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x")
    path, value, _ = restored_value(tmp_path, caplog)
    assert path.endswith("ckpt-2") and value == 2.0
    assert "checkpoint 3" in caplog.text and "checkpoint 4" in caplog.text
    assert "not committed" in caplog.text
    assert not os.path.exists(tmp_path / "ckpt-3.index")
    assert not os.path.exists(tmp_path / "ckpt-4_temp")
    assert os.path.exists(tmp_path / "ckpt-2.index")


@pytest.mark.parametrize("damage", ["truncated_data", "missing_data", "garbage_index"])
def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog, damage):
    saved_at(tmp_path, [1, 2])
    data, index = tmp_path / "ckpt-2.data-00000-of-00001", tmp_path / "ckpt-2.index"
    if damage == "truncated_data":
        data.write_bytes(data.read_bytes()[:10])
    elif damage == "missing_data":
        data.unlink()
    else:
        index.write_bytes(b"not an index")
    path, value, checkpointer = restored_value(tmp_path, caplog)
    assert path.endswith("ckpt-1") and value == 1.0
    assert "Skipping checkpoint" in caplog.text and "ckpt-2" in caplog.text
    # The next save of step 2 (from the restored state) replaces the damaged one.
    checkpointer.save(2)
    path, value, _ = restored_value(tmp_path, caplog)
    assert path.endswith("ckpt-2") and value == 1.0


def test_a_checkpoint_this_process_cannot_read_now_is_an_error_not_damage(
    tmp_path, caplog, monkeypatch
):
    """An I/O failure that says nothing about the files (filesystem unavailable, permissions)
    must not make one worker fall back to an older checkpoint than the others."""
    saved_at(tmp_path, [1, 2])
    real = tf.compat.v1.train.NewCheckpointReader

    def flaky(path):
        if path.endswith("ckpt-2"):
            raise tf.errors.UnavailableError(None, None, "the filesystem is not answering")
        return real(path)

    monkeypatch.setattr(tf.compat.v1.train, "NewCheckpointReader", flaky)
    with pytest.raises(OSError, match=r"ckpt-2.*not answering.*not fall back"):
        restored_value(tmp_path, caplog)


def test_no_intact_checkpoint_starts_from_scratch_with_a_warning(tmp_path, caplog):
    saved_at(tmp_path, [1])
    (tmp_path / "ckpt-1.data-00000-of-00001").write_bytes(b"")
    path, value, _ = restored_value(tmp_path, caplog)
    assert path is None and value == -1.0
    assert "No intact checkpoint" in caplog.text


def test_a_checkpoint_of_another_model_is_an_error_not_skipped(tmp_path):
    saved_at(tmp_path, [1])
    layer = keras.layers.Dense(5, name="wider")  # named: auto names would shift other tests
    layer.build((None, 3))
    other = Checkpointer(str(tmp_path), 3, position=DataPosition(4, 8), model=layer)
    with pytest.raises(ValueError, match="does not match the model"):
        other.restore()


def test_the_data_position_is_in_the_checkpoint_and_checked(tmp_path, caplog):
    saved_at(tmp_path, [6])  # 4 steps per epoch: epoch 1, step 2 within it
    reader = tf.train.load_checkpoint(str(tmp_path / "ckpt-6"))
    stored = {
        name: int(reader.get_tensor(f"data_position/{name}/.ATTRIBUTES/VARIABLE_VALUE"))
        for name in ("step", "epoch", "step_in_epoch", "steps_per_epoch", "global_batch_size")
    }
    assert stored == {
        "step": 6,
        "epoch": 1,
        "step_in_epoch": 2,
        "steps_per_epoch": 4,
        "global_batch_size": 8,
    }
    path, _, checkpointer = restored_value(tmp_path, caplog)
    checkpointer.position.check(path, 6)
    checkpointer.position.check(path, 5)  # float16 loss scaling skipped an update
    with pytest.raises(ValueError, match="inconsistent"):
        checkpointer.position.check(path, 7)
    path, _, grown = restored_value(tmp_path, caplog, steps_per_epoch=5)
    with pytest.raises(ValueError, match="steps_per_epoch': 4.*steps_per_epoch': 5"):
        grown.position.check(path, 6)


def test_workers_that_restored_different_steps_stop_with_both_steps_named():
    faults.check_restored_steps([6, 6, 6], "/run/checkpoints")  # agreement: no error
    with pytest.raises(faults.CheckpointMismatchError) as info:
        faults.check_restored_steps([6, 4], "/run/checkpoints")
    message = str(info.value)
    assert "worker 0: step 6" in message and "worker 1: step 4" in message
    assert "/run/checkpoints" in message and "shared" in message
    with pytest.raises(faults.CheckpointMismatchError, match="worker 1: step 0 .no checkpoint"):
        faults.check_restored_steps([3, 0], "/run/checkpoints")


def test_restored_steps_are_gathered_per_worker(mirrored_strategy):
    """One process with two replicas is one worker: one value, whatever the replicas."""
    assert faults.restored_steps(mirrored_strategy, 7) == [7]
    assert faults.restored_steps(tf.distribute.get_strategy(), 3) == [3]


# --- Workdir hygiene -----------------------------------------------------------------------------


def test_a_differing_config_is_an_error_naming_the_fields(tmp_path):
    c = job_config()
    workdir.save_config(str(tmp_path), c, archive_previous=False)
    assert workdir.check_config(str(tmp_path), c) == {}
    changed = job_config(**{"optimizer.base_lr": 0.3, "model.base_width": 8})
    with pytest.raises(workdir.ConfigMismatchError) as info:
        workdir.check_config(str(tmp_path), changed)
    message = str(info.value)
    assert "2 field(s) differ" in message
    assert "optimizer.base_lr: 0.5 in the workdir, 0.3 now" in message
    assert "model.base_width: 4 in the workdir, 8 now" in message
    assert "--overwrite" in message
    accepted = workdir.check_config(str(tmp_path), changed, overwrite=True)
    assert set(accepted) == {"optimizer.base_lr", "model.base_width"}


def test_fields_that_do_not_change_the_training_may_differ(tmp_path):
    workdir.save_config(str(tmp_path), job_config(), archive_previous=False)
    relaxed = job_config(
        **{"train.progress_bar": True, "train.log_every_steps": 7, "checkpoint.every_minutes": 5.0}
    )
    assert set(workdir.check_config(str(tmp_path), relaxed)) == {
        "train.progress_bar",
        "train.log_every_steps",
        "checkpoint.every_minutes",
    }


def test_a_saved_config_reads_back_with_fields_added_since_at_their_defaults(tmp_path):
    c = job_config(**{"model.base_width": 8})
    saved = json.loads(c.to_json())
    del saved["model"]["remat"]  # a run recorded before the field existed
    (tmp_path / "config.json").write_text(json.dumps(saved))
    config = workdir.read_config(str(tmp_path))
    assert config.model.remat is False
    assert config.model.base_width == 8  # what the run recorded still wins
    # A memory setting: switching it on for a resumed run is accepted.
    with_remat = job_config(**{"model.base_width": 8, "model.remat": True})
    assert set(workdir.check_config(str(tmp_path), with_remat)) == {"model.remat"}


def test_trainer_refuses_a_differing_config_and_overwrite_keeps_the_old_one(tmp_path):
    c = job_config(**{"schedule.total_steps": 1})
    train.Trainer(c, str(tmp_path)).fit()
    changed = job_config(**{"schedule.total_steps": 2})
    with pytest.raises(workdir.ConfigMismatchError, match="schedule.total_steps: 1 in the workdir"):
        train.Trainer(changed, str(tmp_path))
    # Accepted: the run continues from its checkpoint with the new config.
    trainer = train.Trainer(changed, str(tmp_path), overwrite=True)
    assert trainer.fit()["steps"] == 2
    assert json.loads((tmp_path / "config.json").read_text())["schedule"]["total_steps"] == 2
    assert json.loads((tmp_path / "config.json.1").read_text())["schedule"]["total_steps"] == 1


class _RunWithNothingLeft:
    """Stands in for a Trainer resumed in a finished workdir: `fit` trains no step."""

    is_chief = True

    def __init__(self, config, workdir, overwrite=False):
        pass

    def fit(self):
        nan = float("nan")
        return dict(steps=6, final_loss=nan, collapse_std=nan, images_per_s=nan, preempted=False)

    def evaluate_knn(self):
        return {"knn_top1_learned": 0.5}


def test_summary_is_written_atomically_and_a_rerun_keeps_its_measurements(tmp_path, monkeypatch):
    finished = dict(steps=6, final_loss=1.5, collapse_std=0.8, images_per_s=90.0, preempted=False)
    path = train.write_summary(str(tmp_path), finished)
    # Rerun: nothing left to train, so no loss of its own; the finished run's values stay.
    monkeypatch.setattr(train, "Trainer", _RunWithNothingLeft)
    again = train.train_and_evaluate(job_config(), str(tmp_path))
    expected = {**finished, "knn_top1_learned": 0.5}
    written = json.loads(open(path).read())
    # Where it ran is recorded anew by each run (byol_tf/platform/cpu.py).
    assert written.pop("machine")["cpu_vector_isa"] == cpu.vector_isa()
    assert written == expected
    assert again["final_loss"] == 1.5 and again["summary_path"] == path
    # Only a summary of the same step lends its values; another step's are not this run's.
    moved = train.keep_previous_measurements(
        str(tmp_path), {**_RunWithNothingLeft.fit(None), "steps": 8}
    )
    assert math.isnan(moved["final_loss"])
    # A write that fails half way (here: a value JSON cannot hold) leaves the old file whole.
    with pytest.raises(TypeError):
        train.write_summary(str(tmp_path), {"a_value": object(), "steps": 7})
    assert {k: v for k, v in json.loads(open(path).read()).items() if k != "machine"} == expected
    assert os.listdir(tmp_path) == ["summary.json"]


# --- When to save and stop -----------------------------------------------------------------------


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_run_control_saves_by_steps_and_by_minutes():
    clock = FakeClock()
    control = faults.RunControl(tf.distribute.get_strategy(), 5, every_minutes=2, clock=clock)
    assert control.decide(0, 4) == faults.Decision(save=False, stop=False)
    assert control.decide(4, 5).save  # crosses a multiple of every_steps
    assert control.decide(5, 12).save  # crosses 10
    clock.now = 119.0
    assert not control.decide(12, 13).save
    clock.now = 120.0
    assert control.decide(13, 14) == faults.Decision(save=True, stop=False)
    control.saved()
    clock.now = 200.0  # 80 s after the last save, and no multiple of 5 crossed
    assert not control.decide(16, 17).save
    clock.now = 240.0
    assert control.decide(17, 18).save
    # Only the chief's clock counts (other workers' clocks are ignored).
    other = faults.RunControl(tf.distribute.get_strategy(), 100, 1, is_chief=False, clock=clock)
    clock.now = 1e6
    assert not other.decide(1, 2).save


def test_sigterm_asks_to_save_and_stop_and_the_handler_is_restored():
    import signal

    before = signal.getsignal(signal.SIGTERM)
    control = faults.RunControl(tf.distribute.get_strategy(), 100)
    with control:
        os.kill(os.getpid(), signal.SIGTERM)
        assert control.decide(1, 2) == faults.Decision(save=True, stop=True)
    assert signal.getsignal(signal.SIGTERM) is before


def test_worker_failure_message_names_the_cause_and_the_checkpoint():
    error = tf.errors.UnavailableError(
        None,
        None,
        "Graph execution error:\n\nCollective ops is aborted by: Connection reset by peer\nmore",
    )
    message = faults.worker_failure_message(error, "/run/checkpoints/ckpt-3")
    assert "Another worker" in message and "Connection reset by peer" in message
    assert "ckpt-3" in message and "relaunch every worker" in message
    assert "There is no checkpoint yet" in faults.worker_failure_message(error, None)


def test_a_lost_data_service_is_reported_with_its_address_and_how_to_resume():
    from byol_tf.data.service import DispatcherUnavailableError

    lost = tf.errors.UnavailableError(
        None, None, "Failed to get element from worker 10.0.0.7:5051: Socket closed\nmore"
    )
    error = faults.explain_failure(lost, "/run/checkpoints/ckpt-3", 1, "grpc://data:5050")
    assert isinstance(error, DispatcherUnavailableError)
    message = str(error)
    assert "grpc://data:5050" in message and "data.service_address" in message
    assert "Socket closed" in message and "dispatcher" in message
    assert "ckpt-3" in message and "resume" in message
    assert "no checkpoint yet" in str(faults.explain_failure(lost, None, 1, "grpc://data:5050"))
    # With several workers the message must say it is the service, not a peer.
    assert isinstance(
        faults.explain_failure(lost, None, 2, "grpc://data:5050"), DispatcherUnavailableError
    )
    # One process has no peers: with a service configured, only the service can be unavailable.
    bare = tf.errors.UnavailableError(None, None, "failed to connect to all addresses")
    assert isinstance(
        faults.explain_failure(bare, None, 1, "data:5050"), DispatcherUnavailableError
    )
    # A collective's failure in a multi-worker run is still a lost peer.
    peer = tf.errors.UnavailableError(None, None, "Collective ops is aborted by: task unhealthy")
    assert isinstance(faults.explain_failure(peer, None, 2, "data:5050"), faults.WorkerFailureError)
    assert isinstance(faults.explain_failure(peer, None, 2, ""), faults.WorkerFailureError)
    # One process without a service: nothing to explain, the original error stands.
    assert faults.explain_failure(bare, None, 1, "") is None


# --- Clear errors --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("", "TF_CONFIG environment variable; it is unset"),
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"task": {"type": "worker", "index": 0}}', "has no 'cluster'"),
        ('{"cluster": {"worker": "h:1"}, "task": {"type": "worker", "index": 0}}', "list of"),
        ('{"cluster": {"worker": ["h1"]}, "task": {"type": "worker", "index": 0}}', "'host:port'"),
        ('{"cluster": {"worker": ["h:1"]}, "task": {"type": "chief", "index": 0}}', "'chief'"),
        (
            '{"cluster": {"worker": ["h:1", "h:2"]}, "task": {"type": "worker", "index": 2}}',
            "index 2 is outside the 2 'worker' addresses",
        ),
    ],
)
def test_a_bad_tf_config_is_a_clear_error(raw, expected):
    with pytest.raises(ValueError, match=expected.replace("(", r"\(")):
        distribute.check_tf_config(raw)


class _ResolvedMultiWorker(tf.distribute.MultiWorkerMirroredStrategy):
    """A MultiWorkerMirroredStrategy in type only: its resolver reads TF_CONFIG, no cluster
    is started."""

    def __init__(self):  # not the real one, which would start the collective runtime
        self._resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()

    @property
    def cluster_resolver(self):
        return self._resolver


@pytest.mark.parametrize(
    "cluster, task, chief",
    [
        ({"worker": ["h:1", "h:2"]}, ("worker", 0), True),
        ({"worker": ["h:1", "h:2"]}, ("worker", 1), False),
        ({"chief": ["h:0"], "worker": ["h:1", "h:2"]}, ("chief", 0), True),
        ({"chief": ["h:0"], "worker": ["h:1", "h:2"]}, ("worker", 0), False),
        ({"chief": ["h:0"], "worker": ["h:1", "h:2"]}, ("worker", 1), False),
    ],
    ids=["workers:w0", "workers:w1", "chief:chief", "chief:w0", "chief:w1"],
)
def test_only_one_task_is_chief(monkeypatch, cluster, task, chief):
    tf_config = {"cluster": cluster, "task": {"type": task[0], "index": task[1]}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert distribute.is_chief(_ResolvedMultiWorker()) is chief
    assert distribute.is_chief(tf.distribute.get_strategy()) is True  # one process


def test_multi_worker_strategy_with_a_bad_tf_config_fails_before_starting(monkeypatch, tmp_path):
    monkeypatch.setenv(
        "TF_CONFIG", '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"index": 3}}'
    )
    c = job_config(**{"train.strategy": "multi_worker"})
    with pytest.raises(ValueError, match="task type None"):
        train.Trainer(c, str(tmp_path))


def test_an_unreadable_checkpoint_list_falls_back_to_the_files(tmp_path, caplog):
    saved_at(tmp_path, [1, 2])
    (tmp_path / "checkpoint").write_text("this is { not a state file")
    path, value, _ = restored_value(tmp_path, caplog)
    assert path.endswith("ckpt-2") and value == 2.0
    assert "Cannot read the checkpoint list" in caplog.text
    assert os.path.exists(tmp_path / "ckpt-1.index")  # nothing is removed without the list


def test_train_cli_refuses_a_differing_config_before_training(tmp_path):
    import subprocess
    import sys

    repo = REPO
    config = os.path.join(repo, "configs", "default.py") + ":local"
    from byol_tf.config import load_config

    workdir.save_config(str(tmp_path), load_config(config), archive_previous=False)
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(repo, "tools", "train.py"),
            f"--config={config}",
            f"--workdir={tmp_path}",
            "--config.optimizer.base_lr=0.3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    saved = load_config(config).optimizer.base_lr
    assert f"optimizer.base_lr: {saved} in the workdir, 0.3 now" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_mirrored_without_a_gpu_is_an_error_unless_several_cpus_were_configured(monkeypatch):
    cpus = tf.config.list_logical_devices("CPU")
    assert len(cpus) == 2  # conftest.py
    assert distribute.mirrored_devices() == [d.name for d in cpus]

    def only_one_cpu(kind=None):
        return [] if kind == "GPU" else cpus[:1]

    monkeypatch.setattr(tf.config, "list_logical_devices", only_one_cpu)
    with pytest.raises(ValueError, match="mirrored found no GPU"):
        distribute.mirrored_devices()
