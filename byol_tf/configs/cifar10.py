"""CIFAR-10, 1000 epochs: solo-learn's BYOL recipe on a CIFAR-stem ResNet-18, 32 px.

The paper has no CIFAR runs. This follows the best public long-budget CIFAR-10 BYOL recipe we
know, solo-learn's (scripts/pretrain/cifar/byol.yaml there; 92.6% linear top-1 on CIFAR-10
after 1000 epochs in their model zoo):

  LARS, trust coefficient 0.02, local rate clipped (optimizer.clip_local_lr), biases and norm
  parameters excluded; base lr 1.0 at batch 256; weight decay 1e-5; 10 warm-up epochs, then
  cosine; tau 0.99 -> 1 (cosine); projector 4096 -> 256, predictor 4096; the paper's views
  without blur on either view (at 32 px a 3 px blur removes most of the image), solarize
  0 / 0.2; CIFAR-10 statistics for the input normalisation.

What differs from solo-learn: the LARS trust-ratio denominator is DeepMind's |g + wd w| (solo-
learn's is |g| + wd |w|; docs/recipe.md), and solo-learn trains in float16 (here: float32).
BatchNorm is synchronised over the replicas when there are several, as in solo-learn. The ImageNet recipe of the paper is configs/imagenet.py.

  # TFDS (prepared elsewhere, copied here):
  python tools/train.py --config=configs/cifar10.py --workdir=workdirs/cifar10 \
      --config.data.train=tfds:cifar10:train --config.data.data_dir=/data/tfds
  # An image folder (class subfolders are used as labels for kNN only):
  python tools/train.py --config=configs/cifar10.py --workdir=workdirs/cifar10 \
      --config.data.train=folder:/data/cifar10/train

`configs/cifar10.py:local` is a tiny variant for tests.
"""

from byol_tf.config import base_config


def get_config(arg: str = ""):
    c = base_config()
    c.data.train = "tfds:cifar10:train"
    c.data.image_size = 32
    c.data.global_batch_size = 256
    c.data.cache = True
    c.data.mean = (0.4914, 0.4822, 0.4465)
    c.data.std = (0.2470, 0.2435, 0.2616)

    c.model.encoder = "resnet18"
    c.model.stem = "cifar"

    c.optimizer.base_lr = 1.0
    c.optimizer.weight_decay = 1e-5
    c.optimizer.trust_coefficient = 0.02
    c.optimizer.clip_local_lr = True
    c.schedule.epochs = 1000
    c.schedule.warmup_epochs = 10
    c.ema.tau_base = 0.99
    for view in ("view1", "view2"):
        c.augment[view].blur_p = 0.0

    c.checkpoint.every_steps = 1000
    c.export.every_epochs = 100
    c.train.log_every_steps = 50

    if arg == "local":
        c.data.train = "synthetic:train"
        c.data.synthetic.num_train = 128
        c.data.global_batch_size = 16
        c.data.cache = False
        c.model.base_width = 8
        c.model.projector.hidden_dim = 32
        c.model.predictor.hidden_dim = 32
        c.model.projector.output_dim = 16
        c.model.predictor.output_dim = 16
        c.schedule.total_steps = 2
        c.train.progress_bar = False
    elif arg:
        raise ValueError(f"Unknown config argument {arg!r}; the only variant is 'local'.")
    return c
