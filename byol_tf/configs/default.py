"""Default: BYOL on the embedded synthetic shapes dataset, about 5 minutes on 2 CPU cores.

No download, no flags needed:

  python tools/train.py                      # = --config=configs/default.py --workdir=workdirs/default

It pretrains a narrow CIFAR-stem ResNet-18 (base width 16) for 14 epochs (448 steps of 128) on
4,096 procedurally drawn 32 px images of 8 shape classes, grey shapes on grey backgrounds with
random grey levels, contrast, position and scale (byol_tf/data/synthetic.py), exports the
encoder, then prints the kNN (k=20) accuracy of the learned encoder next to a
random-initialised one on 1,024 held-out images.

The recipe is the paper's LARS (trust coefficient 1e-3, weight decay 1e-6) at base lr 2.0
with two short-budget levers that the search in docs/recipe.md found: the predictor learns at
10x the encoder's rate, without the cosine decay (SimSiam and DirectPred give the predictor a
larger or constant rate), and tau stays at 0.99 instead of rising to 1 (lightly's and
byol-pytorch's choice for short runs). The 14 epochs are what fits 6 minutes on 2 cores of a
CPU without AVX-512. See the README for the figures, and docs/default_dataset.md for how this
dataset and budget were chosen.

`--config=configs/default.py:local` is a tiny variant (a handful of steps) for smoke tests.
"""

from byol_tf.config import base_config


def get_config(arg: str = ""):
    c = base_config()
    c.data.train = "synthetic:train"
    c.data.image_size = 32
    c.data.global_batch_size = 128
    # The synthetic images are drawn on a mid-grey background on average: unit-free stats.
    c.data.mean = (0.5, 0.5, 0.5)
    c.data.std = (0.25, 0.25, 0.25)

    # At 32 px a crop of 8% of the area (9x9 px) often misses the shape entirely, leaving the
    # two views nothing in common but background: start the crops at 25%.
    for view in ("view1", "view2"):
        c.augment[view].crop_area = (0.25, 1.0)

    c.model.encoder = "resnet18"
    c.model.stem = "cifar"
    c.model.base_width = 16
    c.model.projector.hidden_dim = 1024
    c.model.predictor.hidden_dim = 1024
    c.model.projector.output_dim = 128
    c.model.predictor.output_dim = 128

    c.optimizer.base_lr = 2.0
    c.optimizer.weight_decay = 1e-6
    c.optimizer.predictor_lr_multiplier = 10.0
    c.optimizer.predictor_lr_decay = False
    c.schedule.epochs = 14
    c.schedule.warmup_epochs = 1
    c.ema.tau_base = 0.99
    c.ema.tau_schedule = "constant"

    c.train.log_every_steps = 8
    c.checkpoint.every_steps = 100

    c.eval.knn_train = "synthetic:train"
    c.eval.knn_test = "synthetic:test"
    c.eval.knn_k = 20

    if arg == "local":
        c.data.synthetic.num_train = 256
        c.data.synthetic.num_test = 128
        c.data.global_batch_size = 32
        c.model.base_width = 8
        c.model.projector.hidden_dim = 64
        c.model.predictor.hidden_dim = 64
        c.model.projector.output_dim = 32
        c.model.predictor.output_dim = 32
        c.schedule.total_steps = 4
        c.train.log_every_steps = 2
        c.train.progress_bar = False
    elif arg:
        raise ValueError(f"Unknown config argument {arg!r}; the only variant is 'local'.")
    return c
