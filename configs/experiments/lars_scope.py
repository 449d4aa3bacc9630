"""Experiment 5: where LARS applies (Fetterman & Albrecht 2020, appendix).

The LARS trust ratio on all layers, only on the first two ResNet stages (stage1 and
stage2; not the stem), only on the MLP heads, or nowhere (momentum SGD with the same weight
decay), chosen by `optimizer.lars_include_patterns`, regexes on the variable paths
(online/encoder/resnet/stage1_block0/conv1/kernel, online/projector/hidden/kernel, ...). Biases
and norm parameters stay excluded as always. Then their learning-rate observation: a GroupNorm
+ WS encoder with no BatchNorm anywhere (no-norm heads), base lr 0.5 against 0.1.

  python tools/run_experiments.py --suite=lars_scope --output=docs/experiments.md \
      --data_train=folder:/work/data/cifar10/train --data_test=folder:/work/data/cifar10/val

One variant by hand (the names are the keys of VARIANTS; `:mlps,local` is the tiny
version the tests run):

  python tools/train.py --config=configs/experiments/lars_scope.py:mlps \
      --workdir=workdirs/experiments/lars_scope/mlps \
      --config.data.train=folder:/work/data/cifar10/train \
      --config.eval.knn_train=folder:/work/data/cifar10/train \
      --config.eval.knn_test=folder:/work/data/cifar10/val

Result: see docs/experiments.md
"""

import os

from byol_tf.experiments import Variant, variant_config

_BASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_base.py")

# No variable path is empty, so this pattern selects nothing: LARS nowhere.
NOWHERE = r"^$"
_GN_NO_BN = {
    "model.norm": "group_ws",
    "model.projector.norm": "none",
    "model.predictor.norm": "none",
}

VARIANTS = {
    "all": Variant({"optimizer.lars_include_patterns": ()}, label="LARS everywhere"),
    "stages12": Variant(
        {"optimizer.lars_include_patterns": (r"/resnet/stage[12]_block",)},
        label="LARS on stages 1-2 only",
    ),
    "mlps": Variant(
        {"optimizer.lars_include_patterns": (r"(^|/)(projector|predictor)/",)},
        label="LARS on the MLP heads only",
    ),
    "nowhere": Variant(
        {"optimizer.lars_include_patterns": (NOWHERE,)}, label="LARS nowhere (momentum SGD)"
    ),
    "gn_lr05": Variant(
        {**_GN_NO_BN, "optimizer.base_lr": 0.5}, label="GN+WS, no BN anywhere, base lr 0.5"
    ),
    "gn_lr01": Variant(
        {**_GN_NO_BN, "optimizer.base_lr": 0.1}, label="GN+WS, no BN anywhere, base lr 0.1"
    ),
}


def get_config(arg: str = ""):
    return variant_config(_BASE, VARIANTS, arg)
