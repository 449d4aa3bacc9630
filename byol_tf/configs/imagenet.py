"""ImageNet: the paper's exact ResNet-50 recipe (Grill et al. 2020, Sec. 3.3 and App. C).

Batch 4096, 1000 epochs, LARS (trust 1e-3, momentum 0.9, biases and norm parameters excluded
from weight decay and adaptation), base lr 0.2 (lr = 0.2 * 4096 / 256 = 3.2), weight decay
1.5e-6, 10 warm-up epochs then cosine, tau_base 0.996, 224 px, synchronised BatchNorm.
The paper reports 74.3% linear top-1 for this run (on 512 TPU v3 cores, ~8 hours).

  python tools/train.py --config=configs/imagenet.py --workdir=gs://bucket/byol \
      --config.train.strategy=tpu --config.train.tpu_address=my-tpu \
      --config.data.data_dir=gs://bucket/tfds

Shorter budgets: `configs/imagenet.py:<epochs>` with epochs in 40, 100, 300 or 1000 takes
DeepMind's presets for that length (byol/configs/byol.py in their code), which scale the
recipe with the budget: a shorter run gets a higher learning rate and a target that follows
faster. 1000 (the default) is the paper's recipe above.

  epochs   base lr   weight decay   tau_base
    40      0.45       1e-6          0.97
   100      0.45       1e-6          0.99
   300      0.3        1e-6          0.99
  1000      0.2        1.5e-6        0.996

`configs/imagenet.py:local` is a tiny variant for tests.
"""

from byol_tf.config import base_config

# epochs -> (base lr, weight decay, tau_base), DeepMind's presets.
PRESETS = {
    40: (0.45, 1e-6, 0.97),
    100: (0.45, 1e-6, 0.99),
    300: (0.3, 1e-6, 0.99),
    1000: (0.2, 1.5e-6, 0.996),
}


def get_config(arg: str = ""):
    if arg not in ("", "local") and not (arg.isdigit() and int(arg) in PRESETS):
        raise ValueError(
            f"Unknown config argument {arg!r}: use 'local' or a budget in epochs, one of "
            f"{', '.join(map(str, PRESETS))}."
        )
    epochs = int(arg) if arg.isdigit() else 1000
    c = base_config()
    c.data.train = "tfds:imagenet2012:train"
    c.data.image_size = 224
    c.data.global_batch_size = 4096
    c.model.encoder = "resnet50"
    c.model.stem = "imagenet"
    c.model.norm = "sync_batch"
    c.optimizer.base_lr, c.optimizer.weight_decay, c.ema.tau_base = PRESETS[epochs]
    c.schedule.epochs = epochs
    c.schedule.warmup_epochs = 10
    c.train.precision = "bfloat16"
    c.train.steps_per_call = 100
    c.checkpoint.every_steps = 5000
    c.export.every_epochs = 100
    c.train.log_every_steps = 100

    if arg == "local":
        c.data.train = "synthetic:train"
        c.data.image_size = 32
        c.data.synthetic.num_train = 128
        c.data.global_batch_size = 16
        c.model.norm = "batch"
        c.model.base_width = 8
        c.model.projector.hidden_dim = 32
        c.model.predictor.hidden_dim = 32
        c.model.projector.output_dim = 16
        c.model.predictor.output_dim = 16
        c.schedule.total_steps = 2
        c.train.precision = "float32"
        c.train.steps_per_call = 2
        c.train.progress_bar = False
    return c
