"""CIFAR-10: ResNet-18 with the CIFAR stem, 32 px, batch 512, LARS.

Recommended recipe (our choice for 1,000 epochs on 45-50k images; not from the paper, which
has no CIFAR runs): base lr 1.0 (lr = 2.0 at batch 512), weight decay 1e-6, 10 warm-up
epochs, tau_base 0.99 (a CIFAR epoch is only ~90 steps at batch 512, so the target must move
faster than the ImageNet 0.996; solo-learn's CIFAR recipes use 0.99 too), CIFAR-10 statistics
for input normalisation, and the paper's blur, which at 32 px is a 3 px kernel.

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
    c.data.global_batch_size = 512
    c.data.cache = True
    c.data.mean = (0.4914, 0.4822, 0.4465)
    c.data.std = (0.2470, 0.2435, 0.2616)

    c.model.encoder = "resnet18"
    c.model.stem = "cifar"

    c.optimizer.base_lr = 1.0
    c.optimizer.weight_decay = 1e-6
    c.schedule.epochs = 1000
    c.schedule.warmup_epochs = 10
    c.ema.tau_base = 0.99

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
