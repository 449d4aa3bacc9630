"""The mechanism experiments as configs: variants of one budget config.

A suite is one file in `research/configs/`. It defines `VARIANTS`, an ordered
name -> `Variant`, and `get_config = suite_config(__file__, VARIANTS)`: the shared budget of
`research/configs/_base.py`, then the variant's overrides, then, when `arg` contains
`local` (e.g. "bn_none,local"), the tiny settings used by the tests. Running the suites and
writing their tables is `research.runner`.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib.util
import os
from collections.abc import Callable, Mapping
from typing import Any

import ml_collections

from byol_tf.config import load_config

# The order of docs/experiments.md; `--suite=all` runs them in this order.
SUITES = (
    "fixed_target",
    "mlp_norm",
    "no_batch_stats",
    "bn_free",
    "lars_scope",
    "augmentations",
    "batch_size",
    "contrastive",
)
# The recipe searches (docs/recipe.md), not part of "all": variants of configs/cifar10_cpu.py at
# a one-epoch proxy budget and at its full budget, and of configs/default.py.
RECIPE_SUITES = ("recipe_proxy", "recipe_confirm", "default_recipe")
LOCAL = "local"


def library_config(name: str) -> str:
    """The path of `configs/<name>.py`, the library's own configs that suites build on."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(repo, "configs", f"{name}.py")


# The recipe levers at the values configs/cifar10_cpu.py and configs/default.py had before the
# recipe search: the paper's LARS, tau from 0.99 on the cosine schedule, the paper's blur. The
# recipe suites write them out, so that a row stays the same run whatever those configs become.
PREVIOUS_SHORT_RECIPE = {
    "optimizer.base_lr": 1.0,
    "optimizer.trust_coefficient": 1e-3,
    "optimizer.clip_local_lr": False,
    "optimizer.weight_decay": 1e-6,
    "optimizer.predictor_lr_multiplier": 1.0,
    "optimizer.predictor_lr_decay": True,
    "ema.tau_base": 0.99,
    "ema.tau_schedule": "cosine",
    "augment.view1.blur_p": 1.0,
    "augment.view2.blur_p": 0.1,
}


@dataclasses.dataclass(frozen=True)
class Variant:
    """One row of an experiment: config overrides (dotted field -> value) on the budget.

    `local_overrides` are applied after the tiny settings in the local variant, for fields the
    tiny settings would otherwise contradict (e.g. a batch size larger than the tiny dataset).
    """

    overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    label: str = ""
    literature: str = ""  # the published figure this row is set beside, as text
    local_overrides: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def apply_overrides(
    config: ml_collections.ConfigDict, overrides: Mapping[str, Any]
) -> ml_collections.ConfigDict:
    """Sets each dotted field ("model.projector.norm") of `config`; a wrong name is an error."""
    for key, value in overrides.items():
        node = config
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        if leaf not in node:
            raise KeyError(f"Config field {key!r} does not exist; check the spelling.")
        node[leaf] = value
    return config


def parse_variant_arg(arg: str, variants: Mapping[str, Variant]) -> tuple[str, bool]:
    """ "name", "local", "name,local" or "" -> (variant name, local); "" is the first variant."""
    parts = [p.strip() for p in (arg or "").split(",") if p.strip()]
    local = LOCAL in parts
    names = [p for p in parts if p != LOCAL]
    if len(names) > 1 or (names and names[0] not in variants):
        raise ValueError(
            f"Config argument {arg!r} is not a variant: use one of {', '.join(variants)}, "
            f"optionally followed by ',{LOCAL}' for the tiny test variant."
        )
    return (names[0] if names else next(iter(variants))), local


def variant_config(
    base_file: str, variants: Mapping[str, Variant], arg: str = ""
) -> ml_collections.ConfigDict:
    """The budget config of `base_file` with the variant named in `arg` applied."""
    name, local = parse_variant_arg(arg, variants)
    config = load_config(base_file + (f":{LOCAL}" if local else ""))
    apply_overrides(config, variants[name].overrides)
    if local:
        apply_overrides(config, variants[name].local_overrides)
    return config


def suite_config(
    suite_file: str, variants: Mapping[str, Variant], base_file: str | None = None
) -> Callable[..., ml_collections.ConfigDict]:
    """The `get_config(arg)` of the suite file `suite_file`, over `base_file` (default: the
    `_base.py` beside it). A base must have a `local` variant, the tiny one the tests run."""
    base_file = base_file or os.path.join(os.path.dirname(os.path.abspath(suite_file)), "_base.py")

    def get_config(arg: str = "") -> ml_collections.ConfigDict:
        return variant_config(base_file, variants, arg)

    return get_config


def head_norms(projector: str, predictor: str) -> dict[str, str]:
    """Overrides that set the projector's and the predictor's norm (one of HEAD_NORMS)."""
    return {"model.projector.norm": projector, "model.predictor.norm": predictor}


def load_suite(configs_dir: str, suite: str) -> Mapping[str, Variant]:
    """The VARIANTS of `configs_dir/<suite>.py`."""
    path = os.path.join(configs_dir, f"{suite}.py")
    if suite.startswith("_") or not os.path.exists(path):
        known = sorted(
            os.path.splitext(os.path.basename(p))[0]
            for p in glob.glob(os.path.join(configs_dir, "[!_]*.py"))
        )
        raise ValueError(f"Unknown suite {suite!r}: use 'all' or one of {', '.join(known)}.")
    spec = importlib.util.spec_from_file_location(f"experiment_{suite}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.VARIANTS
