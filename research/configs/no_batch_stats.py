"""Experiment 3: no batch statistics anywhere (Richemond et al. 2020).

The encoder uses GroupNorm with Weight Standardisation (8 groups at this width) and
the MLP heads LayerNorm or no norm, so no layer sees another example of the batch. Richemond
et al. report 73.9% ImageNet linear top-1 with GN + WS against 74.3% for BYOL with BatchNorm
(ResNet-50). Compare with the BN baseline of the fixed_target suite.

  python research/run_experiments.py --suite=no_batch_stats --seeds=0,1 --output=docs/experiments.md \
      --data_train=folder:/work/data/cifar10/train --data_test=folder:/work/data/cifar10/val

One variant by hand (the names are the keys of VARIANTS; `:gn_ln,local` is the tiny
version the tests run):

  python tools/train.py --config=research/configs/no_batch_stats.py:gn_ln \
      --workdir=workdirs/experiments/no_batch_stats/gn_ln \
      --config.data.train=folder:/work/data/cifar10/train \
      --config.eval.knn_train=folder:/work/data/cifar10/train \
      --config.eval.knn_test=folder:/work/data/cifar10/val

Result at the previous budget (batch 256, the paper's recipe; docs/experiments.md), on a 2-core
AMD EPYC, commit de3c05d, 2026-12-05; kNN top-1 on the CIFAR-10
val folder after 5 epochs, one seed): GN+WS with LN / LN heads 29.8%, with no-norm heads 30.6%,
against 16.6% for a random GN+WS encoder and 35.5% for BYOL with BatchNorm; collapse_std at the
end 0.381 and 0.525, after a dip to 0.02 and 0.06 in the warm-up. Learns without batch
statistics, but 5-6 points below BatchNorm. Table and discussion: docs/experiments.md.
"""

from research.suites import Variant, head_norms, suite_config

_GN = {"model.norm": "group_ws", "model.gn_groups": 8}

VARIANTS = {
    "gn_ln": Variant({**_GN, **head_norms("layer", "layer")}, label="GN+WS encoder, LN / LN heads"),
    "gn_none": Variant({**_GN, **head_norms("none", "none")}, label="GN+WS encoder, no-norm heads"),
}

get_config = suite_config(__file__, VARIANTS)
