"""Your own images: BYOL on a folder of image files, a starting point to copy and edit.

  python tools/train.py --config=configs/folder.py --workdir=workdirs/mine \
      --config.data.train=folder:/data/my_images

`folder:` reads JPEG, PNG, GIF and BMP files under the path, at any size, as they are needed
(nothing is held in memory: data.cache is off). Subfolders are classes if they are there; BYOL
does not use them. Corrupt files are skipped with a warning naming them.

`configs/folder.py:<image size>` sets the resolution the views are cropped to (default 96):
a ResNet-18 with the CIFAR stem (3x3 convolution, no max-pool) at 64 px and below, with the
ImageNet stem above. At 32 px and below there is no blur on either view (solo-learn's CIFAR
choice: a blur kernel of a tenth of the image removes most of it).

The recipe is DeepMind's 100-epoch preset (as `configs/imagenet.py:100`): base lr 0.45 at batch
256, weight decay 1e-6, tau 0.99 -> 1 on the cosine schedule, 10 warm-up epochs, the paper's
views. Edit for your data and budget:

  --config.schedule.epochs=30                       the budget (the schedules follow it)
  --config.data.mean='(0.5,0.5,0.5)' --config.data.std='(0.25,0.25,0.25)'
                                                    your images' statistics (ImageNet's here),
  --config.data.mean='()' --config.data.std='()'    or computed from the first 4,096 images
                                                    at the start (saved in config.json)
  --config.eval.knn_train=folder:/data/labelled/train --config.eval.knn_test=folder:/data/labelled/val \
  --config.eval.knn_every_epochs=5                  watch kNN on a labelled pair as it trains
  --config.optimizer.predictor_lr_multiplier=10 --config.optimizer.predictor_lr_decay=false \
  --config.ema.tau_schedule=constant                the short-budget levers (docs/recipe.md)

The encoder is exported to <workdir>/export/encoder; docs/evaluation.md uses it.
`configs/folder.py:local` is a tiny variant for tests.
"""

from byol_tf.config import base_config

DEFAULT_IMAGE_SIZE = 96


def get_config(arg: str = ""):
    if arg not in ("", "local") and not (arg.isdigit() and 16 <= int(arg) <= 1024):
        raise ValueError(
            f"Unknown config argument {arg!r}: use 'local' or an image size in pixels "
            "(16 to 1024), e.g. configs/folder.py:128."
        )
    image_size = int(arg) if arg.isdigit() else DEFAULT_IMAGE_SIZE
    c = base_config()
    c.data.train = "folder:images"
    c.data.image_size = image_size
    c.data.global_batch_size = 256
    c.data.cache = False

    c.model.encoder = "resnet18"
    c.model.stem = "cifar" if image_size <= 64 else "imagenet"

    c.optimizer.base_lr = 0.45
    c.optimizer.weight_decay = 1e-6
    c.schedule.epochs = 100
    c.schedule.warmup_epochs = 10
    c.ema.tau_base = 0.99
    if image_size <= 32:
        for view in ("view1", "view2"):
            c.augment[view].blur_p = 0.0

    c.eval.knn_k = 200  # with eval.knn_train / knn_test set: the k of solo-learn and DeepMind

    c.checkpoint.every_steps = 1000
    c.export.every_epochs = 10
    c.train.log_every_steps = 50

    if arg == "local":
        c.data.image_size = 16
        c.model.stem = "cifar"
        c.data.global_batch_size = 16
        c.model.base_width = 8
        c.model.projector.hidden_dim = 32
        c.model.predictor.hidden_dim = 32
        c.model.projector.output_dim = 16
        c.model.predictor.output_dim = 16
        c.schedule.total_steps = 2
        c.schedule.warmup_steps = 1
        c.export.every_epochs = 0
        c.train.progress_bar = False
    return c
