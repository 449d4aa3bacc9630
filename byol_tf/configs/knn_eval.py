"""Weighted kNN evaluation of an exported encoder: k=200, T=0.1 (solo-learn, lightly).

  python tools/knn_eval.py --encoder=workdirs/cifar10/export/encoder \
      --train=folder:/data/cifar10/train --test=folder:/data/cifar10/val \
      --config=configs/knn_eval.py --output=workdirs/cifar10/knn.json

The train source is the memory bank; images are centre-cropped (`augment.test_crop_fraction`)
and encoded in inference mode.

`configs/knn_eval.py:local` is a tiny variant for tests and smoke runs.
"""

from byol_tf.evaluation.config import knn_eval_config


def get_config(arg: str = ""):
    c = knn_eval_config()
    if arg == "local":
        c.data.image_size = 16
        c.eval.batch_size = 32
        c.eval.knn_k = 20
    elif arg:
        raise ValueError(f"Unknown config argument {arg!r}; the only variant is 'local'.")
    return c
