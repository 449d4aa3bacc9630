"""Experiment 6: removing augmentations (Grill et al. 2020, Fig. 6).

The full set T / T'; no colour (crop + flip + blur: no jitter, grayscale or solarize);
crop + flip; crop only. Applied to both views. The paper finds BYOL much less sensitive than
SimCLR to removing colour distortion, and both lose most with crops alone.

  python research/run_experiments.py --suite=augmentations --seeds=0,1 --output=docs/experiments.md \
      --data_train=folder:/work/data/cifar10/train --data_test=folder:/work/data/cifar10/val

One variant by hand (the names are the keys of VARIANTS; `:no_colour,local` is the tiny
version the tests run):

  python tools/train.py --config=research/configs/augmentations.py:no_colour \
      --workdir=workdirs/experiments/augmentations/no_colour \
      --config.data.train=folder:/work/data/cifar10/train \
      --config.eval.knn_train=folder:/work/data/cifar10/train \
      --config.eval.knn_test=folder:/work/data/cifar10/val

Result at the previous budget (batch 256, the paper's recipe; docs/experiments.md), on a 2-core
AMD EPYC, commit de3c05d, 2026-12-05; kNN top-1 on the CIFAR-10
val folder after 5 epochs, one seed): full 35.5%, crop + flip + blur 32.9%, crop + flip 33.7%,
crop only 33.9%; random encoder about 26% (32.1% with placeholder BatchNorm statistics);
collapse_std at the end 0.790, 0.843, 0.834, 0.835. Removing colour costs 2.6 points; the
rest changes nothing at this budget. Table and discussion: docs/experiments.md.
"""

from research.suites import Variant, suite_config

_VIEWS = ("view1", "view2")


def _off(*ops: str) -> dict:
    return {f"augment.{view}.{op}_p": 0.0 for view in _VIEWS for op in ops}


_COLOUR = ("jitter", "grayscale", "solarize")

VARIANTS = {
    "full": Variant({}, label="full T / T'"),
    "no_colour": Variant(_off(*_COLOUR), label="crop + flip + blur"),
    "crop_flip": Variant(_off(*_COLOUR, "blur"), label="crop + flip"),
    "crop_only": Variant(_off(*_COLOUR, "blur", "flip"), label="crop only"),
}

get_config = suite_config(__file__, VARIANTS)
