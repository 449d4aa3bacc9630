"""Linear evaluation of a frozen, exported encoder (the paper's protocol).

The encoder runs in inference mode and is never updated (DeepMind's `eval_experiment.py` with
`freeze_backbone=True`). A linear classifier (zero-initialised, so the result does not depend
on an initialisation seed) is trained on its representation with SGD, Nesterov momentum 0.9
and a cosine learning rate, without weight decay, for `schedule.epochs` epochs
(`configs/linear_eval.py`; DeepMind: 80 epochs, lr 0.2 x batch / 256).

Two modes, recorded in the report:
- "augmented": every step encodes freshly cropped and flipped train images (the protocol);
- "cached": the representations of the centre-cropped train images are computed once and the
  classifier trains on them (much faster, without train-time augmentation).
"auto" picks augmented when a GPU or TPU is visible and cached otherwise.

Learning-rate selection: with several candidates in `optimizer.base_learning_rates`, a
class-stratified `train.val_fraction` of the train source is held out (deterministic for the
seed), one classifier per candidate is trained on the rest and scored on the held-out part,
and the best is kept; with `train.retrain_on_full` (default) the classifier is then retrained
with that learning rate on the whole train source. The test source is only used for the final
score.
"""

from __future__ import annotations

import dataclasses
import time

import keras
import ml_collections
import numpy as np
import tensorflow as tf
from absl import logging

from byol_tf.core.schedules import scaled_learning_rate
from byol_tf.data.pipeline import eval_dataset
from byol_tf.evaluation import classifier, inputs, report, subsets
from byol_tf.evaluation.encoders import SavedModelEncoder
from byol_tf.evaluation.knn import representations
from byol_tf.evaluation.setup import open_run


@dataclasses.dataclass
class LinearResult:
    report: dict
    encoder: SavedModelEncoder
    head: keras.layers.Dense


def resolve_mode(requested: str) -> str:
    """ "auto" -> "augmented" with a GPU/TPU, "cached" on CPU; other values pass through."""
    if requested != "auto":
        return requested
    accelerators = tf.config.list_logical_devices("GPU") + tf.config.list_logical_devices("TPU")
    return "augmented" if accelerators else "cached"


def feature_batches(
    features: np.ndarray, labels: np.ndarray, batch_size: int, seed: int
) -> tf.data.Dataset:
    """Endless {"feature", "label"} batches, each epoch a permutation seeded by (seed, epoch)."""
    x, y = tf.constant(features), tf.constant(labels, tf.int64)
    batch = inputs.effective_batch(batch_size, len(labels))
    ds = inputs.epoch_permutations(np.arange(len(labels)), seed).map(lambda epoch, i: i)
    ds = ds.batch(batch, drop_remainder=True)
    ds = ds.map(lambda i: {"feature": tf.gather(x, i), "label": tf.gather(y, i)})
    return ds.prefetch(tf.data.AUTOTUNE)


class _Protocol:
    """What one linear-evaluation run needs to train a classifier on some train examples."""

    def __init__(self, encoder, train_source, config, image_size, num_classes, mode):
        self.encoder, self.train_source, self.config = encoder, train_source, config
        self.image_size, self.num_classes, self.mode = image_size, num_classes, mode
        self.train_features = self.train_labels = None
        if mode == "cached":
            ds = eval_dataset(train_source, config, config.eval.batch_size, image_size)
            self.train_features, self.train_labels = representations(encoder, ds)

    def features(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Test-view representations and labels of some train examples."""
        if self.train_features is not None:
            return self.train_features[indices], self.train_labels[indices]
        ds = eval_dataset(
            self.train_source,
            self.config,
            self.config.eval.batch_size,
            self.image_size,
            indices=indices,
        )
        return representations(self.encoder, ds)

    def train(self, indices: np.ndarray, lr: float, name: str) -> tuple[keras.layers.Dense, list]:
        c = self.config
        head = keras.layers.Dense(self.num_classes, kernel_initializer="zeros", name="linear")
        dim = int(self.encoder(tf.zeros([1, self.image_size, self.image_size, 3])).shape[-1])
        head.build((None, dim))
        if self.mode == "cached":
            x, y = self.train_features[indices], self.train_labels[indices]
            batches = feature_batches(x, y, c.train.batch_size, c.seed)
            logits_fn = lambda features, training: head(features)  # noqa: ARG005
        else:
            batches = inputs.train_batches(
                self.train_source, indices, c, self.image_size, c.train.batch_size, c.seed
            )

            def logits_fn(images, training):  # noqa: ARG001  (the encoder stays frozen)
                return head(tf.stop_gradient(self.encoder(images, training=False)))

        losses = classifier.fit(
            logits_fn,
            head.trainable_variables,
            batches,
            c.schedule.epochs,
            inputs.steps_per_epoch(c.train.batch_size, len(indices)),
            lr,
            name=name,
            **classifier.sgd_settings(c),
        )
        return head, losses


def _score(head: keras.layers.Dense, features: np.ndarray, labels: np.ndarray) -> dict:
    return classifier.top_k_accuracy(head(tf.constant(features)).numpy(), labels)


def run_linear_eval(
    encoder_path: str,
    train_spec: str,
    test_spec: str,
    config: ml_collections.ConfigDict,
    random_init: bool = False,
) -> LinearResult:
    """Linear evaluation of the SavedModel at `encoder_path`; returns the report and models.

    `random_init=True` evaluates a randomly initialised encoder of the same architecture (the
    baseline), rebuilt from `<encoder_path>.keras`.
    """
    start = time.perf_counter()
    c = config
    run = open_run(encoder_path, train_spec, test_spec, c, random_init=random_init)
    encoder, train_source, image_size = run.encoder, run.train, run.image_size
    mode = resolve_mode(c.train.mode)
    logging.info("Linear evaluation in %s mode.", mode)
    protocol = _Protocol(encoder, train_source, c, image_size, run.num_classes, mode)
    test_x, test_y = representations(
        encoder, eval_dataset(run.test, c, c.eval.batch_size, image_size)
    )

    base_lrs = [float(lr) for lr in c.optimizer.base_learning_rates]
    # Scaled by the batch actually used (the whole train source when it is smaller).
    batch = inputs.effective_batch(c.train.batch_size, train_source.num_examples)
    lrs = [scaled_learning_rate(lr, batch) for lr in base_lrs]
    everything = np.arange(train_source.num_examples)
    selection = None
    if len(lrs) > 1:
        labels = subsets.source_labels(train_source)
        fit_idx, val_idx = subsets.validation_split(
            labels, train_source.num_classes, c.train.val_fraction, c.seed
        )
        val_x, val_y = protocol.features(val_idx)
        val_top1, candidates = [], []
        for lr in lrs:
            candidates.append(protocol.train(fit_idx, lr, name=f"lr {lr:g}"))
            val_top1.append(_score(candidates[-1][0], val_x, val_y)["top1"])
        best = int(np.argmax(val_top1))  # ties: the first (smallest, if sorted) candidate
        selection = {
            "fit_examples": len(fit_idx),
            "val_examples": len(val_idx),
            "val_top1": {f"{lr:g}": acc for lr, acc in zip(lrs, val_top1)},
        }
        chosen = lrs[best]
        if c.train.retrain_on_full:
            head, losses = protocol.train(everything, chosen, name="final")
        else:
            head, losses = candidates[best]
    else:
        best, chosen = 0, lrs[0]
        head, losses = protocol.train(everything, chosen, name="final")

    accuracy = _score(head, test_x, test_y)
    settings = {
        "base_learning_rates": base_lrs,
        "learning_rates": lrs,
        "chosen_lr": chosen,
        "chosen_base_lr": base_lrs[best],
        "selection": selection,
        "retrained_on_full": selection is None or bool(c.train.retrain_on_full),
        "epochs": c.schedule.epochs,
        "batch_size": batch,
        "final_train_loss": losses[-1],
        "mode_requested": c.train.mode,
        "config": c.to_dict(),
    }
    result = report.make_report(
        "linear_eval",
        encoder_path,
        run.init,
        run.data_record(num_test=len(test_y)),
        mode,
        settings,
        accuracy,
        time.perf_counter() - start,
    )
    return LinearResult(result, encoder, head)
