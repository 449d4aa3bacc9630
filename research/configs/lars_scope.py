"""Experiment 5: where LARS applies (Fetterman & Albrecht 2020, appendix).

The LARS trust ratio on all layers, only on the first two ResNet stages (stage1 and
stage2; not the stem), only on the MLP heads, or nowhere (momentum SGD with the same weight
decay), chosen by `optimizer.lars_include_patterns`, regexes on the variable paths
(online/encoder/resnet/stage1_block0/conv1/kernel, online/projector/hidden/kernel, ...). Biases
and norm parameters stay excluded as always. Then their learning-rate observation: a GroupNorm
+ WS encoder with no BatchNorm anywhere (no-norm heads), base lr 0.5 against 0.1.

Outside the scope a kernel takes plain momentum-SGD steps, without the trust ratio that
shrinks a LARS step by about 1e-3 x |w| / |g|. At the budget's LARS learning rate (base 1.0 x
batch / 256) such steps would be orders of magnitude larger than any kernel takes under LARS, and those
rows would diverge for that reason alone. So `optimizer.unscoped_lr_scale=0.05` gives the
kernels outside the scope lr 0.05 x batch / 256, the usual plain-SGD rate for siamese
self-supervised learning at batch 256 (SimSiam's base lr, Chen & He 2021); biases and norm
parameters keep the LARS learning rate in every row, as in the paper, so that only the scope
changes between rows.

  python research/run_experiments.py --suite=lars_scope --seeds=0,1 --output=docs/experiments.md \
      --data_train=folder:/work/data/cifar10/train --data_test=folder:/work/data/cifar10/val

One variant by hand (the names are the keys of VARIANTS; `:mlps,local` is the tiny
version the tests run):

  python tools/train.py --config=research/configs/lars_scope.py:mlps \
      --workdir=workdirs/experiments/lars_scope/mlps \
      --config.data.train=folder:/work/data/cifar10/train \
      --config.eval.knn_train=folder:/work/data/cifar10/train \
      --config.eval.knn_test=folder:/work/data/cifar10/val

Result at the previous budget (batch 256, the paper's recipe; docs/experiments.md), on a 2-core
AMD EPYC, commit de3c05d, 2026-12-05; kNN top-1 on the CIFAR-10
val folder after 5 epochs, one seed): LARS everywhere 35.5%, stages 1-2 only 36.8%, MLP heads
only 34.1%, nowhere (momentum SGD) 35.3%; random encoder 25.9% (32.1% with placeholder
BatchNorm statistics); GN+WS with no BatchNorm anywhere 30.4% at base lr 0.5 and 27.9% at base
lr 0.1 (random GN+WS encoder 16.6%). With BatchNorm no row comes near collapse, whatever the
scope; without it the lower learning rate collapses deeper and does not recover. Table and
discussion: docs/experiments.md.
"""

from research.suites import Variant, head_norms, suite_config

# No variable path is empty, so this pattern selects nothing: LARS nowhere.
NOWHERE = r"^$"
_GN_NO_BN = {"model.norm": "group_ws", "model.gn_groups": 8, **head_norms("none", "none")}

# Plain momentum SGD outside the scope: base lr 1.0 x 0.05, x batch / 256 (see above).
UNSCOPED_LR_SCALE = 0.05


def _scope(*patterns: str) -> dict:
    return {
        "optimizer.lars_include_patterns": patterns,
        "optimizer.unscoped_lr_scale": UNSCOPED_LR_SCALE,
    }


VARIANTS = {
    "all": Variant({"optimizer.lars_include_patterns": ()}, label="LARS everywhere"),
    "stages12": Variant(
        _scope(r"/resnet/stage[12]_block"), label="LARS on stages 1-2 only (SGD lr 0.05 elsewhere)"
    ),
    "mlps": Variant(
        _scope(r"(^|/)(projector|predictor)/"),
        label="LARS on the MLP heads only (SGD lr 0.05 elsewhere)",
    ),
    "nowhere": Variant(_scope(NOWHERE), label="LARS nowhere (momentum SGD, lr 0.05)"),
    "gn_lr05": Variant(
        {**_GN_NO_BN, "optimizer.base_lr": 0.5}, label="GN+WS, no BN anywhere, base lr 0.5"
    ),
    "gn_lr01": Variant(
        {**_GN_NO_BN, "optimizer.base_lr": 0.1}, label="GN+WS, no BN anywhere, base lr 0.1"
    ),
}

get_config = suite_config(__file__, VARIANTS)
