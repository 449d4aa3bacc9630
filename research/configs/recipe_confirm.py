"""Recipe search, stage 2: the best proxy recipe against the previous one at the full budget.

`configs/cifar10_cpu.py`'s whole budget (5 epochs, 875 steps of 256, 1 warm-up epoch) at seeds
0, 1 and 2, for the recipe it had before the search and for the proxy's best row
(research/configs/recipe_proxy.py): the paper's LARS with the predictor at ten times the
schedule's rate, undecayed, and a constant tau of 0.99. The winner becomes cifar10_cpu.py's
recipe. What was tried, kept and why: docs/recipe.md.

  python research/run_experiments.py --suite=recipe_confirm --seeds=0,1,2 --output=docs/recipe.md \
      --workdir_root=workdirs/recipe \
      --data_train=folder:/data/cifar10/train --data_test=folder:/data/cifar10/val
"""

from research.suites import PREVIOUS_SHORT_RECIPE, Variant, library_config, suite_config

_CIFAR10_CPU = library_config("cifar10_cpu")
BUDGET = {"schedule.epochs": 5, "schedule.warmup_epochs": 1, "schedule.warmup_steps": -1}

VARIANTS = {
    "previous": Variant(
        {**BUDGET, **PREVIOUS_SHORT_RECIPE},
        label="the previous recipe: paper LARS, blur, cosine tau from 0.99",
    ),
    "predictor10_tau_constant": Variant(
        {
            **BUDGET,
            **PREVIOUS_SHORT_RECIPE,
            "optimizer.predictor_lr_multiplier": 10.0,
            "optimizer.predictor_lr_decay": False,
            "ema.tau_schedule": "constant",
        },
        label="paper LARS + predictor lr x10, undecayed, constant tau 0.99",
    ),
    # The second proxy round's best (research/configs/recipe_proxy.py: p10c_b128).
    "predictor10_tau_constant_b128": Variant(
        {
            **BUDGET,
            **PREVIOUS_SHORT_RECIPE,
            "optimizer.predictor_lr_multiplier": 10.0,
            "optimizer.predictor_lr_decay": False,
            "ema.tau_schedule": "constant",
            "data.global_batch_size": 128,
        },
        label="the same at batch 128 (twice the steps, lr x 128/256)",
    ),
}

get_config = suite_config(__file__, VARIANTS, base_file=_CIFAR10_CPU)
