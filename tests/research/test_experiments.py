"""The mechanism experiments: every config of research/configs/ trains, and the suite
runner (research.runner, research/run_experiments.py) is resumable and writes its tables.

The configs run in one process at their tiny `local` size (ResNet-18 width 4, 16 px, batch
8), each distinct config once. The runner is tested with a stand-in launcher that writes what
tools/train.py writes, plus one real subprocess run.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from byol_tf import config as config_lib
from byol_tf.evaluation import knn
from byol_tf.models import bn_free
from byol_tf.training import trainer as train
from byol_tf.training import workdir
from research import runner
from research import suites as experiments
from tests import REPO

CONFIGS = os.path.join(REPO, "research", "configs")


def _all_variants() -> list[tuple[str, str]]:
    return [
        (suite, name)
        for suite in experiments.SUITES
        for name in experiments.load_suite(CONFIGS, suite)
    ]


def _distinct_local_configs() -> list:
    """One pytest param per distinct local config; the id lists every variant that has it."""
    groups: dict[str, list[str]] = {}
    for suite, name in _all_variants():
        config = config_lib.load_config(os.path.join(CONFIGS, f"{suite}.py") + f":{name},local")
        groups.setdefault(config.to_json(), []).append(f"{suite}:{name}")
    return [pytest.param(keys[0], id="=".join(keys)) for keys in groups.values()]


def test_every_suite_is_a_file_and_every_file_a_suite():
    files = sorted(f[:-3] for f in os.listdir(CONFIGS) if f.endswith(".py") and f[0] != "_")
    assert files == sorted(experiments.SUITES + experiments.RECIPE_SUITES)
    assert len(_all_variants()) >= 2 + 5 + 2 + 1 + 4 + 4 + 4 + 2
    sizes = {
        config_lib.load_config(
            os.path.join(CONFIGS, "batch_size.py") + f":{n}"
        ).data.global_batch_size
        for n in experiments.load_suite(CONFIGS, "batch_size")
    }
    assert len(sizes) >= 4


@pytest.fixture
def eager_steps():
    """Runs tf.functions eagerly: tracing a ResNet-18 step costs seconds, two eager steps of a
    tiny one a fraction of that. The compiled step is covered by tests/training/test_train.py; here the
    wiring of each config is under test."""
    tf.config.run_functions_eagerly(True)
    yield
    tf.config.run_functions_eagerly(False)


@pytest.mark.parametrize("key", _distinct_local_configs())
def test_experiment_config_runs_two_steps(tmp_path, key, eager_steps):
    suite, name = key.split(":")
    full = config_lib.load_config(os.path.join(CONFIGS, f"{suite}.py") + f":{name}")
    config_lib.validate(full)
    assert full.data.train == "" and full.model.base_width == 16  # the budget, data left open
    c = config_lib.load_config(os.path.join(CONFIGS, f"{suite}.py") + f":{name},local")
    c.schedule.total_steps = 3  # stop at 2 of 3: no export, which is slow and tested elsewhere
    # The same views (same seeds) with the colour ops in the eager step instead of a traced
    # tf.data function (tests/data/test_data.py checks both placements agree): seconds saved.
    c.augment.on_device = True
    trainer = train.Trainer(c, str(tmp_path))
    before = [v.numpy() for v in trainer.online.encoder.trainable_variables]
    summary = trainer.fit(stop_at_step=2)
    assert summary["steps"] == 2 and np.isfinite(summary["final_loss"])
    after = trainer.online.encoder.trainable_variables
    assert max(np.abs(a - b.numpy()).max() for a, b in zip(before, after)) > 0


def test_variants_differ_from_the_base_only_where_they_say():
    base = json.loads(config_lib.load_config(os.path.join(CONFIGS, "_base.py")).to_json())
    for suite, name in _all_variants():
        config = config_lib.load_config(os.path.join(CONFIGS, f"{suite}.py") + f":{name}")
        resolved = workdir.flatten(json.loads(config.to_json()))
        overrides = experiments.load_suite(CONFIGS, suite)[name].overrides
        for key, value in overrides.items():
            expected = list(value) if isinstance(value, tuple) else value
            assert resolved[key] == expected, (suite, name, key)
        # Everything else is the shared budget.
        flat_base = workdir.flatten(base)
        assert {k for k in flat_base if flat_base[k] != resolved[k]} <= set(overrides)


@pytest.mark.parametrize("key", ["fixed_target:fixed_target", "bn_free:heads_none"])
def test_the_random_row_is_built_as_the_trained_network_started(tmp_path, monkeypatch, key):
    suite, name = key.split(":")
    c = config_lib.load_config(os.path.join(CONFIGS, f"{suite}.py") + f":{name},local")
    c.eval.knn_train, c.eval.knn_test = "synthetic:train", "synthetic:test"
    c.augment.on_device = True  # tf.data only crops: the init batch comes faster
    trainer = train.Trainer(c, str(tmp_path))
    evaluated = {}

    def fake_knn(encoder, train_source, test_source, config):
        evaluated["random" if evaluated else "learned"] = encoder
        return {"top1": 0.5, "top5": 1.0}

    monkeypatch.setattr(knn, "evaluate_knn", fake_knn)
    assert trainer.evaluate_knn() == {"knn_top1_learned": 0.5, "knn_top1_random": 0.5}
    assert evaluated["learned"] is trainer.online.encoder
    random = evaluated["random"]
    if c.ema.tau_base == 1.0:  # the frozen target is the paper's "random network"
        assert random is trainer.target.encoder
        return
    # BN-free: a fresh encoder with the data-dependent start (bn_free.init_from_batchnorm), not
    # one whose affine layers are still at scale 1 and offset 0: gamma0 = 0 ends each residual
    # branch, the other scales are 1 / sigma of that batch.
    assert c.model.norm == "bn_free_init" and random is not trainer.target.encoder
    norms = bn_free._norms(random.backbone)
    assert all(not np.any(norm.gamma.numpy()) for norm, last in norms if last)
    assert all(np.all(norm.gamma.numpy() != 1.0) for norm, last in norms if not last)
    fresh, online = random.backbone.stem_conv.kernel, trainer.online.encoder.backbone.stem_conv
    assert not np.allclose(fresh.numpy(), online.kernel.numpy())


def test_docstrings_and_document_hold_the_commands():
    doc = open(os.path.join(REPO, "docs", "experiments.md")).read()
    for suite in experiments.SUITES:
        text = open(os.path.join(CONFIGS, f"{suite}.py")).read()
        docstring = text.split('"""')[1]
        assert f"--suite={suite} --seeds=0,1 --output=docs/experiments.md" in docstring
        variant = docstring.split(f"research/configs/{suite}.py:")[1].split()[0]
        assert variant in experiments.load_suite(CONFIGS, suite), (suite, variant)
        begin, end = runner.markers(suite)
        assert doc.index(begin) < doc.index(end)
        assert f"--suite={suite} --seeds=0,1 --output=docs/experiments.md" in doc
        # The docstring's result is the table's: every measured kNN top-1 appears in it.
        result = docstring.split("Result", 1)[1]
        assert "docs/experiments.md" in result, suite
        table = doc[doc.index(begin) : doc.index(end)]
        rows = [line.split(" | ") for line in table.splitlines() if line.startswith("| ")]
        if len(rows) > 1:  # the header, then one row per run ("|---|" is not "| ")
            learned = rows[0].index("kNN top-1")
            measured = [row[learned] for row in rows[1:] if row[learned] != "—"]
            assert measured, suite
            for value in measured:
                # Over several seeds a cell reads "median (min–max): each seed's".
                median = value.split(" (")[0].split(":")[0]
                assert f"{median}%" in " ".join(result.split()), (suite, value)


def test_variant_argument_and_overrides_errors():
    variants = {"a": experiments.Variant(), "b": experiments.Variant()}
    assert experiments.parse_variant_arg("", variants) == ("a", False)
    assert experiments.parse_variant_arg("b,local", variants) == ("b", True)
    assert experiments.parse_variant_arg("local", variants) == ("a", True)
    with pytest.raises(ValueError, match="'c'.*use one of a, b"):
        experiments.parse_variant_arg("c", variants)
    with pytest.raises(KeyError, match="model.projector.normm"):
        experiments.apply_overrides(config_lib.base_config(), {"model.projector.normm": "none"})


# --- the runner -------------------------------------------------------------------------------


class FakeTrainer:
    """Stands in for tools/train.py: writes config.json, metrics.jsonl and summary.json."""

    def __init__(self, fail=()):
        self.launched, self.fail = [], set(fail)

    def __call__(self, run: runner.Run) -> None:
        self.launched.append(run.key)
        if run.key in self.fail:
            raise subprocess.CalledProcessError(1, run.command())
        os.makedirs(run.workdir, exist_ok=True)
        with open(os.path.join(run.workdir, "config.json"), "w") as f:
            f.write(run.config().to_json(indent=2))
        collapse = 0.1 if run.name == "fixed_target" else 0.9
        with open(os.path.join(run.workdir, "metrics.jsonl"), "w") as f:
            for step in (10, 20):
                f.write(json.dumps({"step": step, "epoch": step / 10, "collapse_std": collapse}))
                f.write("\n")
        summary = dict(
            steps=20, epochs=2.0, final_loss=1.25, collapse_std=collapse, preempted=False,
            knn_top1_learned=(0.5 if run.name == "byol" else 0.25) + 0.1 * (run.seed or 0),
            knn_top1_random=0.125,
        )  # fmt: skip
        with open(os.path.join(run.workdir, "summary.json"), "w") as f:
            json.dump(summary, f)


DOC = """# Experiments

Prose before.

<!-- results:contrastive:begin -->
Not run yet.
<!-- results:contrastive:end -->

Prose after.
"""


def _run(tmp_path, suite, launch, **kwargs):
    return runner.run_suite(
        suite,
        output=str(tmp_path / "docs" / "experiments.md"),
        configs_dir=CONFIGS,
        workdir_root=str(tmp_path / "runs"),
        data_train="synthetic:train",
        data_test="synthetic:test",
        launch=launch,
        **kwargs,
    )


def test_run_suite_writes_the_table_and_resumes(tmp_path):
    (tmp_path / "docs").mkdir()
    doc = tmp_path / "docs" / "experiments.md"
    doc.write_text(DOC)
    fake = FakeTrainer()
    outcomes = _run(tmp_path, "contrastive", fake)
    assert fake.launched == ["contrastive/byol", "contrastive/nt_xent"]
    assert [o.status for o in outcomes] == ["finished", "finished"]
    text = doc.read_text()
    assert text.startswith("# Experiments\n\nProse before.") and text.endswith("Prose after.\n")
    table = text.split("<!-- results:contrastive:begin -->")[1].split("<!-- results:")[0]
    assert "Not run yet." not in table
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| run | literature | kNN top-1 | kNN top-1, random init |")
    byol, nt_xent = rows[1], rows[2]
    assert "| BYOL | 57.7 | 50.0 | 12.5 | 0.900 | 1.250 | 2.0 |" in byol
    assert "| NT-Xent (SimCLR loss) | 44.1 | 25.0 | 12.5 |" in nt_xent
    command = (
        "`python tools/train.py --config=research/configs/contrastive.py:nt_xent "
        f"--workdir={tmp_path}/runs/contrastive/nt_xent --config.data.train=synthetic:train "
        "--config.eval.knn_train=synthetic:train --config.eval.knn_test=synthetic:test`"
    )
    assert command in nt_xent
    assert "[png](experiments/contrastive_nt_xent.png)" in nt_xent
    for png in ("contrastive_byol.png", "contrastive_nt_xent.png", "contrastive.png"):
        assert (tmp_path / "docs" / "experiments" / png).read_bytes()[:4] == b"\x89PNG"
    record = json.loads(
        (tmp_path / "runs" / "contrastive" / "byol" / "experiment.json").read_text()
    )
    assert record["metrics"]["knn"] == {"knn_top1_learned": 0.5, "knn_top1_random": 0.125}
    assert record["wall_s"] >= 0

    # A summary metric the table learns to show later reaches finished runs without training.
    summary_path = tmp_path / "runs" / "contrastive" / "byol" / "summary.json"
    with_stats = dict(json.loads(summary_path.read_text()), knn_top1_random_init_stats=0.375)
    summary_path.write_text(json.dumps(with_stats))
    later = FakeTrainer()
    _run(tmp_path, "contrastive", later)
    assert later.launched == []
    text = doc.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert "| kNN top-1, random init | random init, placeholder BN stats |" in rows[0]
    assert "| BYOL | 57.7 | 50.0 | 12.5 | 37.5 | 0.900 |" in rows[1]
    assert "| NT-Xent (SimCLR loss) | 44.1 | 25.0 | 12.5 | — |" in rows[2]

    # Rerun: nothing trains again and the table is the same.
    again = FakeTrainer()
    _run(tmp_path, "contrastive", again)
    assert again.launched == []
    assert doc.read_text() == text

    # A run that lost its summary (or was preempted) trains again; the other does not.
    os.remove(tmp_path / "runs" / "contrastive" / "nt_xent" / "summary.json")
    summary_path = tmp_path / "runs" / "contrastive" / "byol" / "summary.json"
    preempted = dict(json.loads(summary_path.read_text()), preempted=True)
    summary_path.write_text(json.dumps(preempted))
    third = FakeTrainer()
    _run(tmp_path, "contrastive", third)
    assert third.launched == ["contrastive/byol", "contrastive/nt_xent"]


def test_identical_configs_train_once_and_stale_workdirs_stop_the_suite(tmp_path):
    fake = FakeTrainer()
    _run(tmp_path, "contrastive", fake)
    # fixed_target:byol is the same config as contrastive:byol: reused, not retrained.
    outcomes = _run(tmp_path, "fixed_target", fake)
    assert fake.launched[2:] == ["fixed_target/fixed_target"]
    reused = outcomes[0]
    assert reused.status == "reused" and reused.workdir.endswith("contrastive/byol")
    table = (tmp_path / "docs" / "experiments.md").read_text()
    assert "BYOL (tau_base 0.99) (reused: same config as contrastive/byol)" in table
    assert "| fixed random target (tau = 1) | 18.8 | 25.0 | 12.5 | 0.100 |" in table

    # Different data flags resolve to a different config than the finished run holds.
    with pytest.raises(RuntimeError, match="different config"):
        runner.run_suite(
            "contrastive",
            output=str(tmp_path / "docs" / "experiments.md"),
            configs_dir=CONFIGS,
            workdir_root=str(tmp_path / "runs"),
            data_train="synthetic:train",
            data_test="synthetic:other",
            launch=fake,
        )


def test_runs_recorded_before_a_field_existed_are_still_finished_and_reused(tmp_path):
    fake = FakeTrainer()
    _run(tmp_path, "contrastive", fake)
    # As if byol-tf gained model.remat after these runs: their config.json lacks it.
    for path in (tmp_path / "runs" / "contrastive").glob("*/config.json"):
        written = json.loads(path.read_text())
        del written["model"]["remat"]
        path.write_text(json.dumps(written))
    _run(tmp_path, "contrastive", fake)
    _run(tmp_path, "fixed_target", fake)
    assert fake.launched == ["contrastive/byol", "contrastive/nt_xent", "fixed_target/fixed_target"]
    # A field recorded at a value other than today's default is a different config.
    path = tmp_path / "runs" / "contrastive" / "byol" / "config.json"
    written = json.loads(path.read_text())
    written["model"]["remat"] = True
    path.write_text(json.dumps(written))
    with pytest.raises(RuntimeError, match="different config"):
        _run(tmp_path, "contrastive", fake)


def test_seeds_run_every_variant_per_seed_and_the_table_gives_the_spread(tmp_path):
    fake = FakeTrainer(fail={"contrastive/nt_xent/seed2"})
    outcomes = _run(tmp_path, "contrastive", fake, seeds=(0, 1, 2))
    # Seed by seed, so a suite stopped halfway has every variant at the first seeds.
    assert fake.launched == [
        f"contrastive/{name}/seed{seed}" for seed in (0, 1, 2) for name in ("byol", "nt_xent")
    ]
    assert [o.status for o in outcomes][-1] == "failed"
    assert (tmp_path / "runs" / "contrastive" / "byol" / "seed1" / "summary.json").exists()
    config = json.loads(
        (tmp_path / "runs" / "contrastive" / "byol" / "seed2" / "config.json").read_text()
    )
    assert config["seed"] == 2
    text = (tmp_path / "docs" / "experiments.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    assert len(rows) == 3  # the header and one row per variant
    # byol learned 50, 60, 70 for seeds 0, 1, 2: median, range, then each seed.
    assert "| BYOL (seeds 0, 1, 2) | 57.7 | 60.0 (50.0–70.0): 50.0 / 60.0 / 70.0 |" in rows[1]
    assert "| 12.5 (12.5–12.5): 12.5 / 12.5 / 12.5 |" in rows[1]
    assert "--config.seed=0`" in rows[1]
    # The failed seed is named, and its missing value shown as such.
    assert "(seed 2 failed: Command" in rows[2]
    assert "30.0 (25.0–35.0): 25.0 / 35.0 / —" in rows[2]
    # Rerun: only the failed seed trains again.
    again = FakeTrainer()
    _run(tmp_path, "contrastive", again, seeds=(0, 1, 2))
    assert again.launched == ["contrastive/nt_xent/seed2"]


def test_variants_train_a_subset_and_report_only_trains_nothing(tmp_path):
    fake = FakeTrainer()
    _run(tmp_path, "contrastive", fake, seeds=(0, 1), variants=("nt_xent",))
    assert fake.launched == ["contrastive/nt_xent/seed0", "contrastive/nt_xent/seed1"]
    text = (tmp_path / "docs" / "experiments.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    # The table keeps every variant: the one not trained is shown as not run.
    assert "| BYOL (seeds 0, 1) (seed 0 not run) (seed 1 not run) |" in rows[1]
    assert (
        "| NT-Xent (SimCLR loss) (seeds 0, 1) | 44.1 | 30.0 (25.0–35.0): 25.0 / 35.0 |" in (rows[2])
    )
    with pytest.raises(ValueError, match="Unknown variants \\['nope'\\]"):
        _run(tmp_path, "contrastive", fake, variants=("nope",))

    (tmp_path / "docs" / "experiments.md").unlink()

    def refuse(run):
        raise AssertionError(f"report_only launched {run.key}")

    outcomes = _run(tmp_path, "contrastive", refuse, seeds=(0, 1), report_only=True)
    assert [o.status for o in outcomes] == ["not run", "finished", "not run", "finished"]
    assert (tmp_path / "docs" / "experiments.md").read_text() == text
    # Over several suites, every suite's table is written.
    _run(tmp_path, "all", refuse, seeds=(0, 1), report_only=True)
    written = (tmp_path / "docs" / "experiments.md").read_text()
    for suite in experiments.SUITES:
        assert runner.markers(suite)[0] in written, suite


def test_failed_run_is_reported_and_the_suite_goes_on(tmp_path):
    fake = FakeTrainer(fail={"contrastive/byol"})
    outcomes = _run(tmp_path, "contrastive", fake)
    assert [o.status for o in outcomes] == ["failed", "finished"]
    table = (tmp_path / "docs" / "experiments.md").read_text()
    assert "| BYOL (failed: Command" in table


def test_evaluators_plug_in_and_are_cached(tmp_path):
    calls = []

    def linear(workdir, summary, config):
        calls.append(workdir)
        assert config.eval.knn_test == "synthetic:test"  # the run's resolved config
        return {"linear_top1": summary["knn_top1_learned"] + 0.25}

    evaluators = {"knn": runner.knn_from_summary, "linear": linear}
    fake = FakeTrainer()
    _run(tmp_path, "contrastive", fake, evaluators=evaluators)
    assert len(calls) == 2
    table = (tmp_path / "docs" / "experiments.md").read_text()
    assert "| kNN top-1 | kNN top-1, random init | linear_top1 |" in table
    assert "| 50.0 | 12.5 | 75.0 |" in table
    _run(tmp_path, "contrastive", fake, evaluators=evaluators)
    assert len(calls) == 2 and len(fake.launched) == 2


def test_dry_run_trains_and_writes_nothing(tmp_path):
    def refuse(run):
        raise AssertionError(f"dry run launched {run.key}")

    outcomes = _run(tmp_path, "all", refuse, dry_run=True)
    assert {o.status for o in outcomes} == {"not run"}
    assert [o.run.suite for o in outcomes][0] == "fixed_target"
    assert len(outcomes) == len(_all_variants())
    notes = {o.run.key: o.note for o in outcomes}
    assert notes["fixed_target/byol"] == ""
    assert notes["mlp_norm/bn_bn"] == notes["contrastive/byol"] == "will reuse fixed_target/byol"
    assert not (tmp_path / "docs").exists() and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_tool_runs_a_real_suite_and_resumes(tmp_path):
    """research/run_experiments.py end to end: a one-variant suite trained by tools/train.py."""
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "_base.py").write_text(open(os.path.join(CONFIGS, "_base.py")).read())
    (configs / "tiny.py").write_text(
        open(os.path.join(CONFIGS, "contrastive.py"))
        .read()
        .replace('"byol": Variant({}, label="BYOL", literature="57.7"),', "")
    )
    command = [
        sys.executable,
        os.path.join(REPO, "research", "run_experiments.py"),
        "--suite=tiny",
        "--local",
        f"--configs_dir={configs}",
        f"--workdir_root={tmp_path / 'runs'}",
        f"--output={tmp_path / 'experiments.md'}",
        "--data_train=synthetic:train",
        "--data_test=synthetic:test",
    ]
    first = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]
    summary = json.loads((tmp_path / "runs" / "tiny" / "nt_xent" / "summary.json").read_text())
    assert summary["steps"] == 2 and 0.0 <= summary["knn_top1_learned"] <= 1.0
    table = (tmp_path / "experiments.md").read_text()
    assert "| NT-Xent (SimCLR loss) | 44.1 |" in table and "tiny.py:nt_xent,local" in table
    assert "finished  tiny/nt_xent" in first.stdout

    # The config tools/train.py resolved from the command is the one the runner resolves, so
    # the same suite again finds the run finished: not stale, not to be trained again.
    def refuse(run):
        raise AssertionError(f"{run.key} launched again")

    again = runner.run_suite(
        "tiny",
        output=str(tmp_path / "experiments.md"),
        configs_dir=str(configs),
        workdir_root=str(tmp_path / "runs"),
        data_train="synthetic:train",
        data_test="synthetic:test",
        local=True,
        launch=refuse,
    )
    assert [o.status for o in again] == ["finished"]
    assert (tmp_path / "experiments.md").read_text() == table


# --- the recipe searches ----------------------------------------------------------------------


def _recipe_variants() -> list[tuple[str, str]]:
    return [
        (suite, name)
        for suite in experiments.RECIPE_SUITES
        if os.path.exists(os.path.join(CONFIGS, f"{suite}.py"))
        for name in experiments.load_suite(CONFIGS, suite)
    ]


def _recipe_base(suite: str) -> str:
    text = open(os.path.join(CONFIGS, f"{suite}.py")).read()
    base = "default.py" if 'library_config("default")' in text else "cifar10_cpu.py"
    return os.path.join(REPO, "configs", base)


def test_recipe_variants_differ_from_their_base_only_where_they_say():
    variants = _recipe_variants()
    assert len(variants) >= 2 * 2 + 2  # at least the proxy's and the default's candidates
    for suite, name in variants:
        base = workdir.flatten(json.loads(config_lib.load_config(_recipe_base(suite)).to_json()))
        config = config_lib.load_config(os.path.join(CONFIGS, f"{suite}.py") + f":{name}")
        config_lib.validate(config)
        resolved = workdir.flatten(json.loads(config.to_json()))
        overrides = experiments.load_suite(CONFIGS, suite)[name].overrides
        for key, value in overrides.items():
            expected = list(value) if isinstance(value, tuple) else value
            assert resolved[key] == expected, (suite, name, key)
        assert {k for k in base if base[k] != resolved[k]} <= set(overrides), (suite, name)
        text = open(os.path.join(CONFIGS, f"{suite}.py")).read().split('"""')[1]
        assert f"--suite={suite} --seeds=" in text and "--output=docs/recipe.md" in text


@pytest.mark.parametrize(
    "key",
    [
        "recipe_proxy:solo_predictor10",  # clipped LARS, the predictor's own rate
        "recipe_proxy:lightly_sgd",  # a LARS scope matching nothing: momentum SGD, constant tau
        "default_recipe:predictor10",
    ],
)
def test_recipe_config_runs_two_steps(tmp_path, key, eager_steps):
    suite, name = key.split(":")
    c = config_lib.load_config(os.path.join(CONFIGS, f"{suite}.py") + f":{name},local")
    c.schedule.total_steps = 3
    c.augment.on_device = True
    c.eval.knn_train = c.eval.knn_test = ""
    trainer = train.Trainer(c, str(tmp_path))
    before = [v.numpy() for v in trainer.online.trainable_variables]
    summary = trainer.fit(stop_at_step=2)
    assert summary["steps"] == 2 and np.isfinite(summary["final_loss"])
    after = trainer.online.trainable_variables
    assert max(np.abs(a - b.numpy()).max() for a, b in zip(before, after)) > 0
