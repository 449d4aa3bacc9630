"""Experiment 7: batch size (Grill et al. 2020, Fig. 5).

Batch 64, 128, 256 and 512 for the same 5 epochs. The learning rate scales linearly,
lr = optimizer.base_lr x batch / 256, which the config already does. The paper finds BYOL
stable from 4096 down to 256 and degrading below, where the BatchNorm statistics get noisy,
while SimCLR degrades as soon as the batch (its negatives) shrinks.

  python research/run_experiments.py --suite=batch_size --seeds=0,1 --output=docs/experiments.md \
      --data_train=folder:/work/data/cifar10/train --data_test=folder:/work/data/cifar10/val

One variant by hand (the names are the keys of VARIANTS; `:b128,local` is the tiny
version the tests run):

  python tools/train.py --config=research/configs/batch_size.py:b128 \
      --workdir=workdirs/experiments/batch_size/b128 \
      --config.data.train=folder:/work/data/cifar10/train \
      --config.eval.knn_train=folder:/work/data/cifar10/train \
      --config.eval.knn_test=folder:/work/data/cifar10/val

Result at the previous budget (batch 256, the paper's recipe; docs/experiments.md), on a 2-core
AMD EPYC, commit de3c05d, 2026-12-05; kNN top-1 on the CIFAR-10
val folder after 5 epochs, one seed): batch 64 35.6%, batch 128 37.3%, batch 256 35.5%, batch
512 34.6%; random encoder about 26% (32.1% with placeholder BatchNorm statistics); collapse_std
at the end 0.788, 0.774, 0.790, 0.808. Small batches are not worse here, against the paper;
at a fixed 5 epochs they also take more steps. Table and discussion: docs/experiments.md.
"""

from research.suites import Variant, suite_config


def _batch(size: int) -> Variant:
    # The tiny test dataset holds 64 images: the local version keeps the ratios at 1/16.
    return Variant(
        {"data.global_batch_size": size},
        label=f"batch {size} (lr {size / 256:g} x base)",
        local_overrides={"data.global_batch_size": size // 16},
    )


VARIANTS = {f"b{size}": _batch(size) for size in (64, 128, 256, 512)}

get_config = suite_config(__file__, VARIANTS)
