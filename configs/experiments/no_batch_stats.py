"""Experiment 3: no batch statistics anywhere (Richemond et al. 2020).

The encoder uses GroupNorm with Weight Standardisation (8 groups at this width) and
the MLP heads LayerNorm or no norm, so no layer sees another example of the batch. Richemond
et al. report 73.9% ImageNet linear top-1 with GN + WS against 74.3% for BYOL with BatchNorm
(ResNet-50). Compare with the BN baseline of the fixed_target suite.

  python tools/run_experiments.py --suite=no_batch_stats --output=docs/experiments.md \
      --data_train=folder:/work/data/cifar10/train --data_test=folder:/work/data/cifar10/val

One variant by hand (the names are the keys of VARIANTS; `:gn_ln,local` is the tiny
version the tests run):

  python tools/train.py --config=configs/experiments/no_batch_stats.py:gn_ln \
      --workdir=workdirs/experiments/no_batch_stats/gn_ln \
      --config.data.train=folder:/work/data/cifar10/train \
      --config.eval.knn_train=folder:/work/data/cifar10/train \
      --config.eval.knn_test=folder:/work/data/cifar10/val

Result: see docs/experiments.md
"""

from byol_tf.experiments import Variant, head_norms, suite_config

_GN = {"model.norm": "group_ws"}

VARIANTS = {
    "gn_ln": Variant({**_GN, **head_norms("layer", "layer")}, label="GN+WS encoder, LN / LN heads"),
    "gn_none": Variant({**_GN, **head_norms("none", "none")}, label="GN+WS encoder, no-norm heads"),
}

get_config = suite_config(__file__, VARIANTS)
