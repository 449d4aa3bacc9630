"""The model the performance comparison measures: the PyTorch peer's BYOL, in byol-tf.

`shared/bench/peer/peer_byol_torch.py` times byol-pytorch on a CIFAR ResNet-18 (3x3 stride-1
stem, no max-pool, widths w/2w/4w/8w), projector and predictor 4096 -> 256, 32 px images, one
in-memory batch. This config is the same network with byol-tf's faithful step (per-view
BatchNorm, LARS with weight decay and the warm-up/cosine schedule, the cosine EMA), and the
paper's augmentations (with CIFAR statistics) for the parts that time them.

The argument picks the width and batch, and optional switches joined by commas:

  python benchmarks/benchmark.py --config=configs/benchmark.py:w64_b256 --output=bench.json
  python benchmarks/benchmark.py --config=configs/benchmark.py:w16_b128,device_aug,concat \
      --end_to_end=folder:/data/cifar10/train --output=bench.json

  wW_bB        base width W, global batch B (default w64_b256)
  device_aug   colour, blur and solarize inside the train step (augment.on_device)
  concat       both views as one 2B batch (model.concat_views; shares BatchNorm statistics)
  bf16         mixed bfloat16 precision
  xla          XLA-compiled replica step
  remat        recompute each residual block in the backward pass (model.remat)
  joint        both views' online backward in one pass, as before train.backprop_per_view
  spc<N>       N steps per tf.function call
  local        a tiny variant for tests

Every field can still be overridden with --config.<field>=... . See docs/performance.md for the
figures and the machine they were measured on.
"""

import re

from byol_tf.config import base_config


def get_config(arg: str = "w64_b256"):
    c = base_config()
    c.data.train = "synthetic:train"
    c.data.image_size = 32
    c.data.mean = (0.4914, 0.4822, 0.4465)
    c.data.std = (0.2470, 0.2435, 0.2616)
    c.model.encoder = "resnet18"
    c.model.stem = "cifar"
    c.optimizer.base_lr = 1.0
    c.schedule.total_steps = 1000
    c.schedule.warmup_epochs = 0
    c.ema.tau_base = 0.99
    c.train.progress_bar = False
    c.eval.knn_train = c.eval.knn_test = ""

    for part in filter(None, arg.split(",")):
        size = re.fullmatch(r"w(\d+)_b(\d+)", part)
        steps = re.fullmatch(r"spc(\d+)", part)
        if size:
            c.model.base_width = int(size.group(1))
            c.data.global_batch_size = int(size.group(2))
        elif steps:
            c.train.steps_per_call = int(steps.group(1))
        elif part == "device_aug":
            c.augment.on_device = True
        elif part == "concat":
            c.model.concat_views = True
        elif part == "bf16":
            c.train.precision = "bfloat16"
        elif part == "xla":
            c.train.jit_compile = True
        elif part == "remat":
            c.model.remat = True
        elif part == "joint":
            c.train.backprop_per_view = False
        elif part == "local":
            c.model.base_width = 4
            c.data.image_size = 16
            c.data.global_batch_size = 8
            c.data.synthetic.num_train = 64
            c.data.synthetic.image_size = 16
            c.model.projector.update(hidden_dim=32, output_dim=16)
            c.model.predictor.update(hidden_dim=32, output_dim=16)
        else:
            raise ValueError(
                f"Unknown benchmark config part {part!r}: use wW_bB, device_aug, concat, bf16, "
                "xla, remat, joint, spcN or local (comma-separated)."
            )
    return c
