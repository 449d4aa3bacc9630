"""Semi-supervised fine-tuning of an exported encoder on a class-balanced label subset.

  python tools/finetune.py --encoder=workdirs/cifar10/export/encoder \
      --train=folder:/data/cifar10/train --test=folder:/data/cifar10/val \
      --label_fraction=0.01 --config=configs/finetune.py \
      --output=workdirs/cifar10/finetune_1pct.json --export=workdirs/cifar10/classifier_1pct
  # the supervised baseline: same architecture, random initialisation, same subset
  python tools/finetune.py ... --label_fraction=0.01 --from_scratch

The whole network is trained: SGD with Nesterov momentum 0.9 (as in the paper's semi-supervised
protocol), cosine decay, L2 weight decay 5e-4 on kernels, base lr 0.05 x batch / 256, 50
epochs over the subset, batch 128; train images get the linear protocol's random crop + flip.
The learning rate, epochs and weight decay are our defaults for CIFAR-sized subsets, not the
paper's ImageNet values: with 1% of the labels an epoch is only a few steps, so raise
`schedule.epochs` accordingly, and tune on a validation split of your own data.

`configs/finetune.py:local` is a tiny variant for tests and smoke runs.
"""

from byol_tf.evaluation.config import finetune_config


def get_config(arg: str = ""):
    c = finetune_config()
    if arg == "local":
        c.data.image_size = 16
        c.train.batch_size = 16
        c.eval.batch_size = 32
        c.schedule.epochs = 8
        c.optimizer.base_lr = 1.0
        c.subset.label_fraction = 0.5
        c.train.progress_bar = False
    elif arg:
        raise ValueError(f"Unknown config argument {arg!r}; the only variant is 'local'.")
    return c
