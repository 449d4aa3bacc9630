"""The config schema of the downstream tools: kNN, linear evaluation and fine-tuning.

`linear_eval_config()`, `finetune_config()` and `knn_eval_config()` return every field the
tools read, with the paper's values where the paper has one; `configs/linear_eval.py`,
`configs/finetune.py` and `configs/knn_eval.py` start from them. The `data` group is the
pretraining one (so every source string works the same way), without the fields that only
pretraining reads. `validate` rejects values that cannot work, naming the field.
"""

from __future__ import annotations

import ml_collections

from byol_tf.config import base_config

MODES = ("auto", "cached", "augmented")
_PRETRAIN_ONLY_DATA = ("train", "global_batch_size", "mean", "std")


def _common() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0
    c.data = base_config().data
    for key in _PRETRAIN_ONLY_DATA:
        del c.data[key]
    # Side of the images given to the encoder. 0: the size the encoder was trained at, which
    # byol-tf's export records (32 for a SavedModel that records none, with a warning). An
    # encoder exported with a fixed input size overrides it (the tool says so).
    c.data.image_size = 0
    c.eval = ml_collections.ConfigDict()
    c.eval.batch_size = 256  # batches for representations and test predictions
    # The --random_init twin's BatchNorm moving statistics, as a training run's own check
    # estimates them: on the first N test-time batches of the train split, weights untouched
    # (models.bn_stats), the like-for-like control for a trained encoder. 0 keeps Keras's
    # placeholders (mean 0, variance 1: every BatchNorm is the identity in inference mode, a
    # function the network never computes in training). They can disagree by several points;
    # docs/experiments.md shows both.
    c.eval.random_bn_batches = 16
    return c


def _augment() -> ml_collections.ConfigDict:
    # The linear protocol's augmentations (DeepMind's LINEAR_TRAIN and EVAL modes): a random
    # resized crop and a flip for training images, a centre crop for test images.
    return ml_collections.ConfigDict(
        dict(
            crop_area=(0.08, 1.0),
            crop_aspect_ratio=(3 / 4, 4 / 3),
            flip_p=0.5,
            # Side of the central square kept at test time, as a fraction of the short side.
            # 1.0 suits 32-96 px datasets; DeepMind's ImageNet evaluation uses 224/256 = 0.875.
            test_crop_fraction=1.0,
        )
    )


def _sgd(epochs: int, weight_decay: float) -> tuple[ml_collections.ConfigDict, ...]:
    optimizer = ml_collections.ConfigDict(
        dict(momentum=0.9, nesterov=True, weight_decay=weight_decay)
    )
    schedule = ml_collections.ConfigDict(dict(epochs=epochs, warmup_epochs=0))
    return optimizer, schedule


def linear_eval_config() -> ml_collections.ConfigDict:
    """Frozen encoder, linear classifier: DeepMind's `configs/eval.py` protocol by default."""
    c = _common()
    c.augment = _augment()
    # 80 epochs of SGD with Nesterov momentum 0.9, cosine decay, no weight decay (reference).
    c.optimizer, c.schedule = _sgd(epochs=80, weight_decay=0.0)
    # Candidate base learning rates, each scaled by batch_size / 256. With more than one, each is
    # trained on train minus a validation split and the best on that split is kept; the
    # reference uses 0.2 alone. The test split is never used to choose.
    c.optimizer.base_learning_rates = (0.05, 0.1, 0.2, 0.4, 0.8)
    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 256
    # "cached": representations of centre-cropped train images computed once (fast, no train
    # augmentation). "augmented": every step encodes freshly cropped and flipped images (the
    # paper's protocol). "auto": augmented on a GPU/TPU, cached on CPU.
    c.train.mode = "auto"
    c.train.val_fraction = 0.1  # per class, carved deterministically out of the train source
    # After choosing the learning rate, retrain on the whole train source (True) or keep the
    # classifier trained without the validation split (False).
    c.train.retrain_on_full = True
    c.train.progress_bar = True
    return c


def finetune_config() -> ml_collections.ConfigDict:
    """The whole network fine-tuned on a labelled subset (semi-supervised protocol)."""
    c = _common()
    c.augment = _augment()
    # SGD with Nesterov momentum, as in the paper's semi-supervised protocol; the learning rate,
    # epochs and the small weight decay are our defaults for CIFAR-sized subsets: tune them on
    # a validation split of your own data.
    c.optimizer, c.schedule = _sgd(epochs=50, weight_decay=5e-4)
    c.optimizer.base_lr = 0.05  # scaled by batch_size / 256
    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 128
    c.train.progress_bar = True
    c.subset = ml_collections.ConfigDict()
    # Exactly one way of choosing labels is used: subset_file, else labels_per_class > 0, else
    # label_fraction (1.0 = every train example).
    c.subset.label_fraction = 0.01
    c.subset.labels_per_class = 0
    c.subset.seed = 0  # the subset's own seed: the same subset whatever `seed` trains with
    return c


def knn_eval_config() -> ml_collections.ConfigDict:
    """Weighted kNN on L2-normalised representations (k=200, T=0.1: solo-learn, lightly)."""
    c = _common()
    c.augment = ml_collections.ConfigDict(dict(test_crop_fraction=1.0))
    # The same keys as a training run's kNN check and monitor (byol_tf.evaluation.knn).
    c.eval.knn_k = 200
    c.eval.knn_temperature = 0.1
    return c


def validate(config: ml_collections.ConfigDict) -> None:
    """Raises ValueError naming the first field whose value cannot work."""
    if "train" in config and "mode" in config.train and config.train.mode not in MODES:
        raise ValueError(f"train.mode={config.train.mode!r} is not one of {', '.join(MODES)}.")
    if "train" in config and config.train.batch_size < 1:
        raise ValueError(f"train.batch_size={config.train.batch_size} must be >= 1.")
    if config.eval.batch_size < 1:
        raise ValueError(f"eval.batch_size={config.eval.batch_size} must be >= 1.")
    if config.data.image_size < 0:
        raise ValueError(
            f"data.image_size={config.data.image_size} must be > 0, or 0 for the encoder's own."
        )
    if config.eval.get("random_bn_batches", 0) < 0:
        raise ValueError(f"eval.random_bn_batches={config.eval.random_bn_batches} must be >= 0.")
    if not 0.0 < config.augment.test_crop_fraction <= 1.0:
        raise ValueError(
            f"augment.test_crop_fraction={config.augment.test_crop_fraction} must be in (0, 1]."
        )
    if "schedule" in config and config.schedule.epochs <= 0:
        raise ValueError(f"schedule.epochs={config.schedule.epochs} must be > 0.")
    if "optimizer" in config:
        lrs = config.optimizer.get("base_learning_rates", (config.optimizer.get("base_lr"),))
        if not lrs or any(lr is None or lr <= 0 for lr in lrs):
            raise ValueError(f"Learning rates {tuple(lrs)} must all be > 0 (and at least one).")
        if config.optimizer.weight_decay < 0:
            raise ValueError(
                f"optimizer.weight_decay={config.optimizer.weight_decay} must be >= 0."
            )
    if "train" in config and "val_fraction" in config.train:
        if not 0.0 < config.train.val_fraction < 1.0:
            raise ValueError(f"train.val_fraction={config.train.val_fraction} must be in (0, 1).")
    if "knn_k" in config.eval and (config.eval.knn_k < 1 or config.eval.knn_temperature <= 0):
        raise ValueError(
            f"eval.knn_k={config.eval.knn_k} must be >= 1 and "
            f"eval.knn_temperature={config.eval.knn_temperature} > 0."
        )
