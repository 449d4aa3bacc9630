"""The one budget every mechanism experiment runs at (issue 7, docs/experiments.md).

CIFAR-10 from the image folders (45,000 train / 5,000 val JPEGs, 32 px), a CIFAR-stem
ResNet-18 at base width 16 (128-d representation), projector and predictor 128 -> 1024 -> 128,
batch 256, 5 epochs (875 steps, the first epoch a linear warm-up), LARS with base lr 1.0
(lr = 1.0 x 256/256), weight decay 1e-6, tau_base 0.99, the paper's augmentations; at the end
a weighted kNN (k=200, T=0.1) of the learned and of a random-initialised encoder, on the val
folder with the train folder as memory bank. Sized for about 15 minutes a run on 2 CPU cores
(~12 minutes of training at the ~300 images/s this step runs at here, plus the kNN).

The data has no default: `research/run_experiments.py --data_train=... --data_test=...` fills
`data.train`, `eval.knn_train` and `eval.knn_test` (or pass them as --config overrides), so a
run can never silently train on something else. This file is not a suite: the files next to
it apply their variants to it. `_base.py:local` is the tiny version the tests use (embedded
synthetic data, ResNet-18 at base width 4, 16 px, batch 8, 2 steps).
"""

from byol_tf.config import base_config


def get_config(arg: str = ""):
    c = base_config()
    c.data.train = ""  # filled by research/run_experiments.py --data_train
    c.data.image_size = 32
    c.data.global_batch_size = 256
    c.data.cache = True  # 45,000 x 32 x 32 x 3 bytes: decoded once into memory
    c.data.mean = (0.4914, 0.4822, 0.4465)
    c.data.std = (0.2470, 0.2435, 0.2616)

    c.model.encoder = "resnet18"
    c.model.stem = "cifar"
    c.model.base_width = 16
    # 8 groups keep at least 2 channels per group at width 16 (32 would be instance norm).
    c.model.gn_groups = 8
    c.model.projector.hidden_dim = 1024
    c.model.projector.output_dim = 128
    c.model.predictor.hidden_dim = 1024
    c.model.predictor.output_dim = 128

    c.optimizer.base_lr = 1.0
    c.optimizer.weight_decay = 1e-6
    c.schedule.epochs = 5
    c.schedule.warmup_epochs = 1
    # 875 steps: the target must follow faster than with the paper's 0.996 over ~100k steps.
    c.ema.tau_base = 0.99
    c.objective.temperature = 0.5  # nt_xent only; not tuned

    c.train.log_every_steps = 10
    c.checkpoint.every_steps = 200

    c.eval.knn_train = ""  # filled by --data_train
    c.eval.knn_test = ""  # filled by --data_test
    c.eval.knn_k = 200
    c.eval.knn_temperature = 0.1

    if arg == "local":
        c.data.train = "synthetic:train"
        c.data.synthetic.num_train = 64
        c.data.image_size = 16
        c.data.global_batch_size = 8
        c.data.cache = False
        c.model.base_width = 4
        c.model.gn_groups = 2
        c.model.projector.hidden_dim = 16
        c.model.projector.output_dim = 8
        c.model.predictor.hidden_dim = 16
        c.model.predictor.output_dim = 8
        c.schedule.total_steps = 2
        c.schedule.warmup_epochs = 0
        c.train.log_every_steps = 1
        c.train.progress_bar = False
        c.checkpoint.every_steps = 1000
    elif arg:
        raise ValueError(f"Unknown config argument {arg!r}; the only variant is 'local'.")
    return c
