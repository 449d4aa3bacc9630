"""CIFAR-10 on a 2-core CPU: the `cifar10` recipe, narrowed and shortened to fit an hour.

What docs/results.md measures. Same network family, stem, resolution, augmentations,
optimizer and EMA as `configs/cifar10.py`; the differences are all budget:

  base width 16 (not 64)         ~1/15 of the FLOPs of a standard ResNet-18
  global batch 256 (not 512)     more updates per epoch for a short run
  5 epochs, 1 warm-up (not 1000, 10)
  colour, blur and solarize in the train step (augment.on_device): faster on CPU, same views

  python tools/train.py --config=configs/cifar10_cpu.py --workdir=workdirs/cifar10_cpu \
      --config.data.train=folder:/data/cifar10/train \
      --config.eval.knn_train=folder:/data/cifar10/train \
      --config.eval.knn_test=folder:/data/cifar10/val --config.eval.knn_every_epochs=1

(the last three flags turn on the kNN monitor, k=200, on the val folder with the train folder
as the memory bank, after every epoch: that is the curve in docs/results.md).

The results are far from a 1000-epoch ResNet-18's: they show the tools and the ordering of
methods at a budget anyone can rerun on a laptop, not CIFAR-10's state of the art.
"""

import os

from byol_tf.config import load_config

_CIFAR10 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cifar10.py")


def get_config(arg: str = ""):
    c = load_config(_CIFAR10 + (":local" if arg == "local" else ""))
    if arg not in ("", "local"):
        raise ValueError(f"Unknown config argument {arg!r}; the only variant is 'local'.")
    c.model.base_width = 8 if arg == "local" else 16
    if arg == "local":
        return c
    c.data.global_batch_size = 256
    c.schedule.epochs = 5
    c.schedule.warmup_epochs = 1
    c.augment.on_device = True
    c.eval.knn_k = 200
    c.checkpoint.every_steps = 200
    c.export.every_epochs = 0
    c.train.log_every_steps = 20
    return c
