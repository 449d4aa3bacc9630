"""Experiment 2: normalisation in the MLP heads (Fetterman & Albrecht 2020).

Projector / predictor norm in {BN/BN, BN/none, none/BN, none/none, LN/LN}; the encoder
keeps BatchNorm. Their STL-10 linear accuracies: 57.7, 55.3, 48.0, 28.3, 29.4, and 28.8 for a
random encoder; our random-encoder row is the random-init column (the same in every row, up
to the architecture).

  python research/run_experiments.py --suite=mlp_norm --seeds=0,1 --output=docs/experiments.md \
      --data_train=folder:/work/data/cifar10/train --data_test=folder:/work/data/cifar10/val

One variant by hand (the names are the keys of VARIANTS; `:bn_none,local` is the tiny
version the tests run):

  python tools/train.py --config=research/configs/mlp_norm.py:bn_none \
      --workdir=workdirs/experiments/mlp_norm/bn_none \
      --config.data.train=folder:/work/data/cifar10/train \
      --config.eval.knn_train=folder:/work/data/cifar10/train \
      --config.eval.knn_test=folder:/work/data/cifar10/val

Result (2026-12-08, a 2-core AMD EPYC with AVX-512, seeds 0 and 1; kNN top-1 on the CIFAR-10 val
folder after 5 epochs, median and range): BN / BN 41.3% (40.8-41.8), none / none 37.3%
(35.5-39.0); random encoder 26.8%; collapse_std at the end 0.760 and 0.564. Their direction,
beyond the seed spread, without collapse. BN / none, none / BN and LN / LN are still to run at
this budget (at the previous one every row ended between 35.5% and 37.0%). Table and
discussion: docs/experiments.md.
"""

from research.suites import Variant, head_norms, suite_config

VARIANTS = {
    "bn_bn": Variant(head_norms("batch", "batch"), label="BN / BN", literature="57.7"),
    "bn_none": Variant(head_norms("batch", "none"), label="BN / none", literature="55.3"),
    "none_bn": Variant(head_norms("none", "batch"), label="none / BN", literature="48.0"),
    "none_none": Variant(head_norms("none", "none"), label="none / none", literature="28.3"),
    "ln_ln": Variant(head_norms("layer", "layer"), label="LN / LN", literature="29.4"),
}

get_config = suite_config(__file__, VARIANTS)
