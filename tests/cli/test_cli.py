"""The commands: every console script in pyproject.toml exists, and --config resolves by name."""

import ast
import os
import re
import subprocess
import sys

import pytest

from byol_tf import cli
from tests import REPO


def _scripts() -> dict[str, str]:
    text = open(os.path.join(REPO, "pyproject.toml")).read()
    section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r'^([\w-]+) = "([\w.:]+)"', section, re.M))


def test_every_console_script_is_a_callable_with_a_tool_beside_it():
    scripts = _scripts()
    assert {"byol-train", "byol-knn-eval", "byol-linear-eval", "byol-finetune"} <= set(scripts)
    for name, target in scripts.items():
        module, _, attr = target.partition(":")
        # Read, not imported: each command defines its own absl flags, which one process
        # cannot hold twice (--workdir, --config).
        path = os.path.join(REPO, *module.split(".")) + ".py"
        functions = {
            n.name for n in ast.parse(open(path).read()).body if isinstance(n, ast.FunctionDef)
        }
        assert attr in functions, name
        # The same command from a clone: tools/<file>.py calls that function.
        tools = [
            f
            for f in os.listdir(os.path.join(REPO, "tools"))
            if f"from {module} import {attr}" in open(os.path.join(REPO, "tools", f)).read()
        ]
        assert len(tools) == 1, (name, tools)


def test_config_names_resolve_to_the_packaged_configs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no configs/ folder here: as after `pip install`
    assert cli.resolve_config("default") == cli.config_file("default")
    assert cli.resolve_config("default.py:local") == cli.config_file("default") + ":local"
    assert cli.resolve_config("imagenet:100") == cli.config_file("imagenet") + ":100"
    assert os.path.exists(cli.config_file("folder"))
    # A file of that name here wins; a path or an unknown name is left to the config flag.
    (tmp_path / "default.py").write_text("")
    assert cli.resolve_config("default.py") == "default.py"
    assert cli.resolve_config("mine/default.py") == "mine/default.py"
    assert cli.resolve_config("nothing_like_it") == "nothing_like_it"
    argv = ["byol-train", "--config=cifar10_cpu", "--config.seed=3", "--workdir=w"]
    assert cli.resolve_config_flags(argv) == [
        "byol-train",
        "--config=" + cli.config_file("cifar10_cpu"),
        "--config.seed=3",
        "--workdir=w",
    ]


@pytest.mark.slow
def test_a_command_run_outside_the_clone_finds_its_config_by_name(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from byol_tf.cli.train import run; sys.argv[0] = 'byol-train'; run()",
            "--config=default:local",
            f"--workdir={tmp_path / 'run'}",
            "--config.schedule.total_steps=2",
            "--config.eval.knn_train=",
            "--config.eval.knn_test=",
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": REPO},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Trained 2 steps" in result.stdout and (tmp_path / "run" / "summary.json").exists()
