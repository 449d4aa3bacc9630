"""Runs the mechanism-experiment suites and writes their tables (research/run_experiments.py).

`run_suite` trains the variants of a suite (research.suites) one after the other, never
in parallel, each with `tools/train.py` in its own process, so the command written in the
table is exactly what ran. It is resumable: a run whose workdir holds a final `summary.json`
is not trained again, and a run whose resolved config equals that of a finished run elsewhere
under the workdir root reuses it (the BYOL baseline appears in several suites). Each run is
then evaluated by the `EVALUATORS` asked for ("knn": the kNN accuracies `tools/train.py`
computed with `byol_tf/evaluation/knn.py`; a linear evaluation plugs in the same way), its collapse
indicator is plotted, and the suite's table is written into the output markdown between the
suite's markers.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Mapping

import ml_collections

from byol_tf.config import load_config
from byol_tf.platform.files import atomic_write_json, read_json
from byol_tf.training.workdir import with_defaults
from research.suites import LOCAL, SUITES, Variant, apply_overrides, load_suite

# --- runs --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Run:
    """One variant of one suite, with where it runs and the data it runs on."""

    suite: str
    name: str
    variant: Variant
    config_file: str
    workdir: str
    data_overrides: dict[str, str]
    local: bool = False
    seed: int | None = None  # None: the config's own seed (one run per variant)

    @property
    def key(self) -> str:
        return f"{self.suite}/{self.name}" + ("" if self.seed is None else f"/seed{self.seed}")

    @property
    def overrides(self) -> dict:
        """The command-line overrides: the data, then the seed."""
        return {**self.data_overrides, **({} if self.seed is None else {"seed": self.seed})}

    @property
    def arg(self) -> str:
        return self.name + (f",{LOCAL}" if self.local else "")

    @property
    def config_arg(self) -> str:
        return f"{self.config_file}:{self.arg}"

    def config(self) -> ml_collections.ConfigDict:
        """The config tools/train.py will resolve from the command."""
        return apply_overrides(load_config(self.config_arg), self.overrides)

    def command(self, python: str = sys.executable, root: str | None = None) -> list[str]:
        """The tools/train.py command; with `root`, paths under it are written relative to it."""

        def show(path: str) -> str:
            if root is None:
                return os.path.abspath(path)
            rel = os.path.relpath(os.path.abspath(path), root)
            return path if rel.startswith("..") else rel

        tool = os.path.join(_repo_root(), "tools", "train.py")
        return [
            python,
            show(tool),
            f"--config={show(self.config_file)}:{self.arg}",
            f"--workdir={show(self.workdir)}",
            *(f"--config.{k}={v}" for k, v in self.overrides.items()),
        ]

    def display_command(self) -> str:
        return shlex.join(self.command(python="python", root=_repo_root()))


def _repo_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def data_overrides(data_train: str, data_test: str) -> dict[str, str]:
    """Config overrides that point a run at its pretraining and kNN data."""
    out = {}
    if data_train:
        out["data.train"] = data_train
        out["eval.knn_train"] = data_train
    if data_test:
        out["eval.knn_test"] = data_test
    return out


def plan_runs(
    suite: str,
    configs_dir: str,
    workdir_root: str,
    data_train: str = "",
    data_test: str = "",
    local: bool = False,
    seeds: tuple[int, ...] = (),
) -> list[Run]:
    """The runs of `suite` ("all": every suite of SUITES) in table order.

    With `seeds`, each variant runs once per seed, in `<variant>/seed<N>`, every variant at one
    seed before the next seed; without, once with its config's seed, in `<variant>`.
    """
    suites = SUITES if suite == "all" else (suite,)
    runs = []
    for name in suites:
        # Seed by seed: a suite stopped halfway has every variant at the first seeds.
        for seed in seeds or (None,):
            for variant_name, variant in load_suite(configs_dir, name).items():
                workdir = os.path.join(workdir_root, name, variant_name)
                runs.append(
                    Run(
                        suite=name,
                        name=variant_name,
                        variant=variant,
                        config_file=os.path.join(configs_dir, f"{name}.py"),
                        workdir=workdir if seed is None else os.path.join(workdir, f"seed{seed}"),
                        data_overrides=data_overrides(data_train, data_test),
                        local=local,
                        seed=seed,
                    )
                )
    return runs


def finished_summary(workdir: str) -> dict | None:
    """The run's summary if it trained to the end (a preempted run's summary does not count)."""
    summary = read_json(os.path.join(workdir, "summary.json"))
    return summary if summary is not None and not summary.get("preempted") else None


def _resolved(config: ml_collections.ConfigDict) -> dict:
    return json.loads(config.to_json())


def _same_config(written: dict | None, resolved: dict) -> bool:
    if written is None:
        return False
    # A field added to byol-tf after the run was recorded is absent from its config.json; the
    # run behaved as that field's default does, so it still counts as the same config.
    return written == resolved or with_defaults(written) == resolved


def _check_same_config(run: Run, resolved: dict) -> None:
    written = read_json(os.path.join(run.workdir, "config.json"))
    if written is not None and not _same_config(written, resolved):
        raise RuntimeError(
            f"{run.workdir} holds a run of a different config than {run.key} resolves to now "
            "(the config file or the data flags changed). Move that workdir away, or pass "
            "another --workdir_root, so that stale results are never reported."
        )


def _find_twin(workdir_root: str, resolved: dict, own: str) -> str | None:
    """A finished run elsewhere under `workdir_root` with exactly this config."""
    pattern = os.path.join(workdir_root, "**", "config.json")
    for path in sorted(glob.glob(pattern, recursive=True)):
        workdir = os.path.dirname(path)
        if os.path.abspath(workdir) == os.path.abspath(own):
            continue
        if _same_config(read_json(path), resolved) and finished_summary(workdir) is not None:
            return workdir
    return None


# --- evaluation --------------------------------------------------------------------------------

# (workdir, summary, config) -> {metric: accuracy in [0, 1]}. Results are cached per evaluator
# in <workdir>/experiment.json, so adding an evaluator later evaluates old runs without
# retraining them. A linear evaluation registers as EVALUATORS["linear"], reading the exported
# encoder from summary["export_dir"] and its data from config.eval.knn_train / knn_test.
Evaluator = Callable[[str, dict, ml_collections.ConfigDict], dict[str, float]]


def knn_from_summary(workdir: str, summary: dict, config: ml_collections.ConfigDict) -> dict:
    """The kNN top-1 that tools/train.py measured (learned and random-init encoders)."""
    del workdir, config
    keys = ("knn_top1_learned", "knn_top1_random", "knn_top1_random_init_stats")
    return {k: summary[k] for k in keys if summary.get(k) is not None}


EVALUATORS: dict[str, Evaluator] = {"knn": knn_from_summary}
# Evaluators that only read summary.json cost nothing: they are re-read on every run of the
# suite instead of cached, so a column added later reaches runs that finished before it.
SUMMARY_EVALUATORS = (knn_from_summary,)
METRIC_TITLES = {
    "knn_top1_learned": "kNN top-1",
    "knn_top1_random": "kNN top-1, random init",
    "knn_top1_random_init_stats": "random init, placeholder BN stats",
}


# --- the runner --------------------------------------------------------------------------------


@dataclasses.dataclass
class Outcome:
    run: Run
    status: str  # "finished", "reused", "failed", "not run"
    workdir: str  # where the results are (the twin's workdir when reused)
    summary: dict | None = None
    record: dict = dataclasses.field(default_factory=dict)  # experiment.json: wall_s, metrics
    note: str = ""


def _subprocess_launch(run: Run) -> None:
    subprocess.run(run.command(), cwd=_repo_root(), check=True)


def run_one(
    run: Run,
    workdir_root: str,
    evaluators: Mapping[str, Evaluator],
    launch: Callable[[Run], None] = _subprocess_launch,
    dry_run: bool = False,
) -> Outcome:
    """Trains `run` unless it (or an identical run) has finished, then evaluates it."""
    config = run.config()
    resolved = _resolved(config)
    _check_same_config(run, resolved)
    workdir, status, note = run.workdir, "finished", ""
    summary = finished_summary(workdir)
    record = read_json(os.path.join(workdir, "experiment.json")) or {}
    if summary is None:
        twin = _find_twin(workdir_root, resolved, run.workdir)
        if twin is not None:
            workdir, status = twin, "reused"
            note = f"same config as {os.path.relpath(twin, workdir_root)}"
            summary = finished_summary(twin)
            record = read_json(os.path.join(twin, "experiment.json")) or {}
        elif dry_run:
            return Outcome(run, "not run", workdir)
        else:
            print(f"[{run.key}] {run.display_command()}", flush=True)
            start = time.perf_counter()
            try:
                launch(run)
            except (subprocess.CalledProcessError, OSError) as e:
                return Outcome(run, "failed", workdir, note=str(e))
            summary = finished_summary(workdir)
            if summary is None:
                return Outcome(run, "failed", workdir, note="no final summary.json")
            record = {"command": run.display_command(), "wall_s": time.perf_counter() - start}
    if dry_run:
        # Reading summary.json costs nothing: a run the runner did not see finish (it was
        # stopped while the run went on) still shows its numbers.
        metrics = dict(record.get("metrics", {}))
        for name, evaluate in evaluators.items():
            if evaluate in SUMMARY_EVALUATORS:
                metrics[name] = evaluate(workdir, summary, config)
        return Outcome(run, status, workdir, summary, {**record, "metrics": metrics}, note)
    metrics = record.setdefault("metrics", {})
    for name, evaluate in evaluators.items():
        if name not in metrics or evaluate in SUMMARY_EVALUATORS:
            metrics[name] = evaluate(workdir, summary, config)
    atomic_write_json(os.path.join(workdir, "experiment.json"), record)
    return Outcome(run, status, workdir, summary, record, note)


def run_suite(
    suite: str,
    output: str,
    configs_dir: str,
    workdir_root: str,
    data_train: str = "",
    data_test: str = "",
    evaluators: Mapping[str, Evaluator] | None = None,
    plots_dir: str | None = None,
    local: bool = False,
    dry_run: bool = False,
    launch: Callable[[Run], None] = _subprocess_launch,
    seeds: tuple[int, ...] = (),
    variants: tuple[str, ...] = (),
    report_only: bool = False,
) -> list[Outcome]:
    """Runs (or, with `dry_run`, only inspects) every run of `suite` and writes its tables.

    Returns the outcomes in table order. Runs go one after another; a failed run is reported
    and the suite continues with the next one. With `dry_run` nothing is trained or written;
    with `report_only` nothing is trained and the tables are written from the finished runs
    (the others shown as not run). `variants` trains only those; the table still has every
    variant of the suite, the others as they stand.
    """
    dry_run = dry_run or report_only
    evaluators = EVALUATORS if evaluators is None else evaluators
    plots_dir = plots_dir or os.path.join(os.path.dirname(os.path.abspath(output)), "experiments")
    seeds = tuple(dict.fromkeys(seeds))  # a seed given twice runs once
    runs = plan_runs(suite, configs_dir, workdir_root, data_train, data_test, local, seeds)
    known = {r.name for r in runs}
    unknown = sorted(set(variants) - known)
    if unknown:
        raise ValueError(f"Unknown variants {unknown}: use some of {', '.join(sorted(known))}.")
    chosen = {r.key for r in runs if not variants or r.name in variants}
    outcomes, planned = [], {}
    for i, run in enumerate(runs):
        outcome = run_one(run, workdir_root, evaluators, launch, dry_run or run.key not in chosen)
        if dry_run and outcome.status == "not run":
            # A real run trains the first of identical configs and reuses it for the others.
            key = json.dumps(_resolved(run.config()), sort_keys=True)
            if key in planned:
                outcome.note = f"will reuse {planned[key]}"
            planned.setdefault(key, run.key)
        outcomes.append(outcome)
        last_of_suite = i == len(runs) - 1 or runs[i + 1].suite != run.suite
        if not dry_run or (report_only and last_of_suite):
            # Rewritten after every run, so the document shows progress through a long suite.
            pending = [Outcome(r, "not run", r.workdir) for r in runs[i + 1 :]]
            table = [o for o in outcomes + pending if o.run.suite == run.suite]
            _write_tables(output, plots_dir, table)
    return outcomes


def _plot(outcomes: list[Outcome], plots_dir: str) -> dict[str, str]:
    """Collapse-indicator curves: one PNG per run and one per suite; run key -> PNG path."""
    from byol_tf.training import plotting as plots

    curves, paths = {}, {}
    for o in outcomes:
        metrics = os.path.join(o.workdir, "metrics.jsonl")
        if o.summary is None or not os.path.exists(metrics):
            continue
        records = plots.read_metrics(metrics)
        seed = "" if o.run.seed is None else f"_seed{o.run.seed}"
        curves[(o.run.variant.label or o.run.name) + seed.replace("_", " ")] = records
        paths[o.run.key] = plots.plot_curves(
            {o.run.name: records},
            "collapse_std",
            os.path.join(plots_dir, f"{o.run.suite}_{o.run.name}{seed}.png"),
            title=f"{o.run.key}: collapse indicator",
        )
    if curves:
        suite = outcomes[0].run.suite
        plots.plot_curves(
            curves, "collapse_std", os.path.join(plots_dir, f"{suite}.png"), title=suite
        )
    return paths


def _percent(value) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _number(value, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _seeded(values: list, digits: int, percent: bool) -> str:
    """One cell: the value, or over several seeds "median (min–max): each seed's"."""
    show = _percent if percent else (lambda v: _number(v, digits))
    known = [v for v in values if v is not None]
    if len(values) == 1 or not known:
        return show(values[0])
    each = " / ".join(show(v) for v in values)
    if len(known) == 1:
        return f"{show(known[0])}: {each}"
    return f"{show(_median(known))} ({show(min(known))}–{show(max(known))}): {each}"


def _groups(outcomes: list[Outcome]) -> list[list[Outcome]]:
    """The outcomes of each variant together (its seeds), in table order."""
    groups: dict[tuple[str, str], list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault((o.run.suite, o.run.name), []).append(o)
    return list(groups.values())


def render_table(outcomes: list[Outcome], plot_paths: Mapping[str, str], output_dir: str) -> str:
    """The markdown table of one suite's outcomes: a row per variant. Over several seeds a
    cell gives the median, the range and every seed's value, in the seeds' order."""
    metric_keys = []
    for o in outcomes:
        for values in o.record.get("metrics", {}).values():
            metric_keys += [k for k in values if k not in metric_keys]
    head = ["run", "literature", *(METRIC_TITLES.get(k, k) for k in metric_keys)]
    head += ["collapse_std (end)", "loss (end)", "epochs", "time (min)", "curve", "command"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for group in _groups(outcomes):
        merged = []
        for o in group:
            values = {}
            for metrics in o.record.get("metrics", {}).values():
                values.update(metrics)
            merged.append(values)
        summaries = [o.summary or {} for o in group]
        first = group[0]
        shown = next((o for o in group if o.summary), first)  # the first seed that finished
        walls = [o.record.get("wall_s") for o in group]
        plot = plot_paths.get(shown.run.key)
        name = first.run.variant.label or first.run.name
        seeds = [o.run.seed for o in group if o.run.seed is not None]
        if seeds:
            name += f" (seeds {', '.join(map(str, seeds))})"
        for o in group:
            if o.status != "finished":
                where = "" if o.run.seed is None else f"seed {o.run.seed} "
                name += f" ({where}{o.status}{': ' + o.note if o.note else ''})"
        cells = [name, first.run.variant.literature or "—"]
        cells += [_seeded([m.get(k) for m in merged], 1, True) for k in metric_keys]
        cells += [
            _seeded([s.get("collapse_std") for s in summaries], 3, False),
            _seeded([s.get("final_loss") for s in summaries], 3, False),
            _number((shown.summary or {}).get("epochs"), 1),
            _seeded([None if w is None else w / 60 for w in walls], 1, False),
            f"[png]({os.path.relpath(plot, output_dir)})" if plot else "—",
            f"`{first.run.display_command()}`",
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def markers(suite: str) -> tuple[str, str]:
    return f"<!-- results:{suite}:begin -->", f"<!-- results:{suite}:end -->"


def replace_section(text: str, suite: str, table: str) -> str:
    """`text` with the suite's table between its markers (appended with them if absent)."""
    begin, end = markers(suite)
    block = f"{begin}\n{table}{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        return head + block + rest.split(end, 1)[1]
    return text.rstrip("\n") + f"\n\n## {suite}\n\n{block}\n"


def _write_tables(output: str, plots_dir: str, outcomes: list[Outcome]) -> None:
    try:
        plot_paths = _plot(outcomes, plots_dir)
    except ImportError as e:  # plotting is a convenience; never lose a night of runs to it
        print(f"No plots ({e}); install matplotlib (requirements.txt) to draw them.")
        plot_paths = {}
    out_dir = os.path.dirname(os.path.abspath(output))
    text = open(output).read() if os.path.exists(output) else "# Mechanism experiments\n"
    text = replace_section(text, outcomes[0].run.suite, render_table(outcomes, plot_paths, out_dir))
    os.makedirs(out_dir, exist_ok=True)
    with open(output, "w") as f:
        f.write(text)
