"""Recipe search, stage 1: candidate short-budget recipes at a one-epoch proxy budget.

Each variant is `configs/cifar10_cpu.py` (ResNet-18 CIFAR stem, base width 16, batch 256) with
the levers named in its overrides, trained for 1 epoch (175 steps, 35 of warm-up) instead of 5,
so the whole space fits a few hours of 2 CPU cores. Run with at least two seeds; the best few
go on to the full 5-epoch budget at three seeds. What was tried, kept and why: docs/recipe.md.

  python research/run_experiments.py --suite=recipe_proxy --seeds=0,1 --output=docs/recipe.md \
      --workdir_root=workdirs/recipe \
      --data_train=folder:/data/cifar10/train --data_test=folder:/data/cifar10/val

The levers (byol_tf/config.py):
  solo-learn's CIFAR LARS  trust coefficient 0.02 with the local rate clipped at the learning
                           rate, weight decay 1e-5, no blur on either view at 32 px
  tau                      the cosine schedule's start, or a constant tau (lightly, byol-pytorch)
  predictor                its own learning rate: a multiple of the schedule's, held after warm-up
"""

from research.suites import PREVIOUS_SHORT_RECIPE, Variant, library_config, suite_config

_CIFAR10_CPU = library_config("cifar10_cpu")
# The proxy budget, on the recipe cifar10_cpu.py had before the search.
PROXY = {"schedule.epochs": 1, "schedule.warmup_steps": 35, **PREVIOUS_SHORT_RECIPE}
# solo-learn's CIFAR BYOL optimizer and views (scripts/pretrain/cifar/byol.yaml there).
SOLO = {
    "optimizer.trust_coefficient": 0.02,
    "optimizer.clip_local_lr": True,
    "optimizer.weight_decay": 1e-5,
    "augment.view1.blur_p": 0.0,
    "augment.view2.blur_p": 0.0,
}


# The best row of the first round: the predictor's own rate and a constant tau.
_P10C = {
    "optimizer.predictor_lr_multiplier": 10.0,
    "optimizer.predictor_lr_decay": False,
    "ema.tau_schedule": "constant",
}


def _proxy(label: str, **overrides) -> Variant:
    return Variant({**PROXY, **overrides}, label=label)


VARIANTS = {
    # The paper's LARS, and the short-budget levers on it, one at a time and together.
    "paper_lars": _proxy("paper LARS (trust 1e-3, no clip), blur, cosine tau from 0.99"),
    "paper_predictor10": _proxy(
        "paper LARS + predictor lr x10, undecayed",
        **{"optimizer.predictor_lr_multiplier": 10.0, "optimizer.predictor_lr_decay": False},
    ),
    "paper_predictor10_tau_constant": _proxy(
        "paper LARS + predictor lr x10, undecayed, constant tau 0.99",
        **{
            "optimizer.predictor_lr_multiplier": 10.0,
            "optimizer.predictor_lr_decay": False,
            "ema.tau_schedule": "constant",
        },
    ),
    # On the best row above: the default run's other levers (docs/recipe.md, "The default run").
    "p10c_lr2": _proxy(
        "paper_predictor10_tau_constant at base lr 2.0",
        **{**_P10C, "optimizer.base_lr": 2.0},
    ),
    "p10c_tau98": _proxy(
        "paper_predictor10_tau_constant with constant tau 0.98",
        **{**_P10C, "ema.tau_base": 0.98},
    ),
    "p10c_b128": _proxy(
        "paper_predictor10_tau_constant at batch 128 (twice the steps, lr x 128/256)",
        **{**_P10C, "data.global_batch_size": 128, "schedule.warmup_steps": 70},
    ),
    "p10c_b128_lr2": _proxy(
        "p10c_b128 at base lr 2.0 (the per-step rate of batch 256 at base lr 1)",
        **{
            **_P10C,
            "data.global_batch_size": 128,
            "schedule.warmup_steps": 70,
            "optimizer.base_lr": 2.0,
        },
    ),
    "p10c_b64": _proxy(
        "paper_predictor10_tau_constant at batch 64 (four times the steps, lr x 64/256)",
        **{**_P10C, "data.global_batch_size": 64, "schedule.warmup_steps": 140},
    ),
    "p10c_b128_crop02": _proxy(
        "p10c_b128 with crops of 20-100% of the image (not 8-100%) on both views",
        **{
            **_P10C,
            "data.global_batch_size": 128,
            "schedule.warmup_steps": 70,
            "augment.view1.crop_area": (0.2, 1.0),
            "augment.view2.crop_area": (0.2, 1.0),
        },
    ),
    # Since a higher encoder rate hurt (paper_short): a lower one, the predictor's unchanged.
    "paper_predictor10_lr05": _proxy(
        "paper LARS at base lr 0.5, predictor at the rate of paper_predictor10 (x20), undecayed",
        **{
            "optimizer.base_lr": 0.5,
            "optimizer.predictor_lr_multiplier": 20.0,
            "optimizer.predictor_lr_decay": False,
        },
    ),
    "paper_no_blur": _proxy(
        "paper LARS, no blur", **{"augment.view1.blur_p": 0.0, "augment.view2.blur_p": 0.0}
    ),
    "paper_short": _proxy(
        "paper LARS, DeepMind's short-run direction: base lr 2.0, cosine tau from 0.97",
        **{"optimizer.base_lr": 2.0, "ema.tau_base": 0.97},
    ),
    # lightly's CIFAR-10 benchmark: momentum SGD at 0.06 x batch / 128 (0.12 here), weight
    # decay 5e-4, no warm-up, constant tau 0.99, no blur. Written as LARS with a scope that
    # matches no variable: momentum SGD with L2 decay, biases and norm parameters undecayed.
    "lightly_sgd": _proxy(
        "lightly's SGD (lr 0.12, wd 5e-4, no warm-up), constant tau 0.99, no blur",
        **{
            "optimizer.lars_include_patterns": (r"(?!)",),
            "optimizer.base_lr": 0.12,
            "optimizer.weight_decay": 5e-4,
            "schedule.warmup_steps": 0,
            "ema.tau_schedule": "constant",
            "augment.view1.blur_p": 0.0,
            "augment.view2.blur_p": 0.0,
        },
    ),
    # solo-learn's CIFAR LARS and views, and the levers on it.
    "solo": _proxy("solo-learn LARS (trust 0.02, clipped), no blur", **SOLO),
    "solo_predictor10": _proxy(
        "solo + predictor lr x10, undecayed",
        **SOLO,
        **{"optimizer.predictor_lr_multiplier": 10.0, "optimizer.predictor_lr_decay": False},
    ),
    "solo_tau_constant": _proxy(
        "solo + constant tau 0.99", **SOLO, **{"ema.tau_schedule": "constant"}
    ),
    "solo_tau97": _proxy("solo + cosine tau from 0.97", **SOLO, **{"ema.tau_base": 0.97}),
}

get_config = suite_config(__file__, VARIANTS, base_file=_CIFAR10_CPU)
