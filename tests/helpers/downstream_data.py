"""Shared fixtures of the downstream-evaluation tests: an easy labelled image folder and a
tiny encoder pretrained on it for a few BYOL steps, exported as a SavedModel (+ .keras).

Built once per test process (the export takes a few seconds) in a temporary directory.
The task is trivially separable, so any sensible encoder is far above chance on it: the class
is the hue of the image (red, green, blue, yellow), under random brightness and pixel noise.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from tests import REPO

HUES = {
    "red": (0.9, 0.15, 0.1),
    "green": (0.1, 0.85, 0.2),
    "blue": (0.15, 0.2, 0.9),
    "yellow": (0.9, 0.85, 0.1),
}
SIZE = 16
PER_CLASS = {"train": 16, "test": 8}


def write_folder(root: str, per_class: int, seed: int, labelled: bool = True) -> str:
    rng = np.random.default_rng(seed)
    for name, colour in HUES.items():
        folder = os.path.join(root, name) if labelled else root
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            image = np.array(colour, np.float32) * rng.uniform(0.6, 1.0)
            image = image + 0.08 * rng.standard_normal((SIZE, SIZE, 3)).astype(np.float32)
            pixels = (np.clip(image, 0, 1) * 255).astype(np.uint8)
            with open(os.path.join(folder, f"{name}_{i:03d}.png"), "wb") as f:
                f.write(tf.io.encode_png(pixels).numpy())
    return root


def pretrain_config(train_spec: str):
    from byol_tf.config import load_config

    c = load_config(os.path.join(REPO, "configs", "default.py") + ":local")
    c.data.train = train_spec
    c.data.image_size = SIZE
    c.data.global_batch_size = 16
    # Width 8, not 4: at 4 the first projection shortcut is a 1x1 stride-2 convolution on 4
    # channels, whose kernel gradient oneDNN's AVX2 kernels get wrong, differently each call
    # (platform.cpu). Under ONEDNN_MAX_CPU_ISA=AVX2 the fine-tune check once read 0.625 < 0.65.
    c.model.base_width = 8
    c.schedule.total_steps = 3
    c.schedule.warmup_epochs = 0
    c.optimizer.base_lr = 0.5
    c.eval.knn_train = ""
    c.eval.knn_test = ""
    c.checkpoint.every_steps = 1000
    return c


@functools.cache
def folders() -> dict[str, str]:
    """Paths: "root", "train", "test" (labelled folders), "unlabelled" (a flat folder)."""
    root = tempfile.mkdtemp(prefix="byol_downstream_")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return {
        "root": root,
        "train": write_folder(os.path.join(root, "train"), PER_CLASS["train"], seed=1),
        "test": write_folder(os.path.join(root, "test"), PER_CLASS["test"], seed=2),
        "unlabelled": write_folder(os.path.join(root, "flat"), 4, seed=3, labelled=False),
    }


@functools.cache
def data() -> dict[str, str]:
    """`folders()` plus "encoder": a SavedModel pretrained with BYOL for 3 steps on the train
    folder ("encoder" + ".keras" beside it)."""
    from byol_tf.training import trainer as train

    paths = dict(folders())
    c = pretrain_config("folder:" + paths["train"])
    summary = train.Trainer(c, os.path.join(paths["root"], "pretrain")).fit()
    paths["encoder"] = summary["export_dir"]
    return paths


def specs() -> tuple[str, str]:
    """The labelled train and test source strings."""
    paths = folders()
    return "folder:" + paths["train"], "folder:" + paths["test"]


def eval_config(name: str):
    """configs/<name>.py:local with the image size of the fixture."""
    from byol_tf.config import load_config

    c = load_config(os.path.join(REPO, "configs", f"{name}.py") + ":local")
    c.data.image_size = SIZE
    return c


def signature_features(path: str, source) -> tuple[np.ndarray, np.ndarray]:
    """Representations straight from the SavedModel's serving signature, as a user would."""
    serve = tf.saved_model.load(path).signatures["serving_default"]
    features, labels = [], []
    for batch in source.ordered_examples().batch(32):
        images = tf.image.convert_image_dtype(batch["image"], tf.float32)
        features.append(serve(images=images)["representation"].numpy())
        labels.append(batch["label"].numpy())
    return np.concatenate(features), np.concatenate(labels)
