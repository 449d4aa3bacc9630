"""The one budget every mechanism experiment runs at: `configs/cifar10_cpu.py`, unchanged.

CIFAR-10 from the image folders (45,000 train / 5,000 val JPEGs, 32 px), a CIFAR-stem
ResNet-18 at base width 16 (128-d representation), projector and predictor 128 -> 4096 -> 256,
batch 128, 5 epochs (1,755 steps, the first epoch a linear warm-up), and cifar10_cpu.py's
short-budget recipe (docs/recipe.md): LARS with base lr 1.0 (x 128/256), the predictor at ten
times the schedule's rate, undecayed, and a constant tau of 0.99; the paper's augmentations.
At the end a weighted kNN (k=200, T=0.1) of the learned and of a random-initialised encoder,
on the val folder with the train folder as memory bank. About 15 minutes a run on 2 CPU cores
with AVX-512.

The suites' BYOL rows are therefore the very runs docs/results.md reports: with
`--workdir_root` covering both, the runner reuses them (same resolved config). Variants with a
GroupNorm encoder set `model.gn_groups` to 8 themselves (2 channels per group at width 16).

The data has no default: `research/run_experiments.py --data_train=... --data_test=...` fills
`data.train`, `eval.knn_train` and `eval.knn_test` (or pass them as --config overrides), so a
run can never silently train on something else. This file is not a suite: the files next to
it apply their variants to it. `_base.py:local` is the tiny version the tests use (embedded
synthetic data, ResNet-18 at base width 8, 16 px, batch 8, 2 steps).

Tables in docs/experiments.md measured before this budget name the budget they ran at.
"""

from byol_tf.config import load_config
from research.suites import library_config

_CIFAR10_CPU = library_config("cifar10_cpu")


def get_config(arg: str = ""):
    if arg not in ("", "local"):
        raise ValueError(f"Unknown config argument {arg!r}; the only variant is 'local'.")
    c = load_config(_CIFAR10_CPU)
    c.data.train = ""  # filled by research/run_experiments.py --data_train
    c.eval.knn_train = ""  # filled by --data_train
    c.eval.knn_test = ""  # filled by --data_test
    if arg == "local":
        c.data.train = "synthetic:train"
        c.data.synthetic.num_train = 64
        c.data.image_size = 16
        c.data.global_batch_size = 8
        c.data.cache = False
        # Width 8: a GroupNorm variant's 8 groups still divide the first stage's channels.
        c.model.base_width = 8
        c.model.projector.hidden_dim = 16
        c.model.projector.output_dim = 8
        c.model.predictor.hidden_dim = 16
        c.model.predictor.output_dim = 8
        c.schedule.total_steps = 2
        c.schedule.warmup_epochs = 0
        c.train.log_every_steps = 1
        c.train.progress_bar = False
        c.checkpoint.every_steps = 1000
    return c
