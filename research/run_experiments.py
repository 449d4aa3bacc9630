"""Runs a suite of mechanism experiments (research/configs/) and writes their tables.

  python research/run_experiments.py --suite=<name|all> --output=docs/experiments.md \
      --data_train=folder:/work/data/cifar10/train --data_test=folder:/work/data/cifar10/val \
      [--workdir_root=workdirs/experiments] [--eval=knn] [--dry_run] [--local] \
      [--seeds=0,1,2] [--variants=a,b] [--report_only]

One run after another, each with tools/train.py; rerunning the same command skips finished
runs (and runs identical to a finished one), so an interrupted suite resumes. --dry_run
prints the plan and what has finished, and trains and writes nothing. --local runs the tiny
test variants on the embedded synthetic data (a smoke test of the whole suite), by default in
workdirs/experiments_local with its own experiments.md there.
"""

import os
import sys

import _bootstrap  # noqa: F401  (repo root on sys.path)
from absl import app, flags

from research import runner

_SUITE = flags.DEFINE_string("suite", None, "Suite name (a file of research/configs) or all.")
_OUTPUT = flags.DEFINE_string("output", "docs/experiments.md", "Markdown file with the tables.")
_DATA_TRAIN = flags.DEFINE_string(
    "data_train", "", "Pretraining data and kNN memory bank, e.g. folder:/data/cifar10/train."
)
_DATA_TEST = flags.DEFINE_string("data_test", "", "kNN test data, e.g. folder:/data/cifar10/val.")
_WORKDIR_ROOT = flags.DEFINE_string(
    "workdir_root", "workdirs/experiments", "Runs go to <root>/<suite>/<variant>."
)
_CONFIGS_DIR = flags.DEFINE_string(
    "configs_dir", os.path.join(_bootstrap.REPO_ROOT, "research", "configs"), "Suite files."
)
_EVAL = flags.DEFINE_list("eval", ["knn"], f"Evaluations: {', '.join(runner.EVALUATORS)}.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the plan; train and write nothing.")
_LOCAL = flags.DEFINE_bool("local", False, "Tiny variants on synthetic data (smoke test).")
_SEEDS = flags.DEFINE_list(
    "seeds",
    [],
    "Run every variant once per seed (e.g. 0,1,2), in <variant>/seed<N>; the table gives each "
    "seed's value, the median and the range. Empty: once, with the config's seed.",
)
_VARIANTS = flags.DEFINE_list(
    "variants", [], "Train only these variants of the suite; the table keeps every variant."
)
_REPORT_ONLY = flags.DEFINE_bool(
    "report_only", False, "Train nothing; write the tables from the runs that finished."
)
flags.mark_flag_as_required("suite")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    unknown = [name for name in _EVAL.value if name not in runner.EVALUATORS]
    if unknown:
        raise app.UsageError(f"--eval={','.join(unknown)}: use {', '.join(runner.EVALUATORS)}.")
    if not _LOCAL.value and not _DRY_RUN.value and not (_DATA_TRAIN.value and _DATA_TEST.value):
        raise app.UsageError(
            "Pass --data_train and --data_test (e.g. folder:/work/data/cifar10/train and "
            "folder:/work/data/cifar10/val, the budget of docs/experiments.md), or --local."
        )
    output, workdir_root = _OUTPUT.value, _WORKDIR_ROOT.value
    if _LOCAL.value:
        # Smoke runs never write into the real document or next to the real runs.
        if not flags.FLAGS["workdir_root"].present:
            workdir_root = "workdirs/experiments_local"
        if not flags.FLAGS["output"].present:
            output = os.path.join(workdir_root, "experiments.md")
    outcomes = runner.run_suite(
        _SUITE.value,
        output=output,
        configs_dir=_CONFIGS_DIR.value,
        workdir_root=workdir_root,
        data_train=_DATA_TRAIN.value,
        data_test=_DATA_TEST.value,
        evaluators={name: runner.EVALUATORS[name] for name in _EVAL.value},
        local=_LOCAL.value,
        dry_run=_DRY_RUN.value,
        seeds=tuple(int(seed) for seed in _SEEDS.value),
        variants=tuple(_VARIANTS.value),
        report_only=_REPORT_ONLY.value,
    )
    for o in outcomes:
        print(f"{o.status:>8}  {o.run.key:<32} {o.note or o.run.display_command()}")
    failed = [o.run.key for o in outcomes if o.status == "failed"]
    if not _DRY_RUN.value or _REPORT_ONLY.value:
        print(f"Tables written to {output}")
    if failed:
        sys.exit(f"Failed runs: {', '.join(failed)}")


if __name__ == "__main__":
    app.run(main)
