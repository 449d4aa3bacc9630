"""Semi-supervised fine-tuning: the whole exported encoder plus a new linear head, on few labels.

The encoder is loaded from the SavedModel as a trainable `SavedModelEncoder`: the optimizer
updates the SavedModel's own variables, and in training mode the `representation_train`
endpoint normalises with batch statistics and updates the BatchNorm moving statistics, which
`serving_default` then uses for the test set. The head is a zero-initialised Dense layer. The
recipe (`configs/finetune.py`): SGD with Nesterov momentum, cosine decay, a small L2 weight
decay on kernels, the linear protocol's crop-and-flip for the train images and the centre
crop for the test images.

The labelled subset is class-balanced and seeded by `subset.seed` alone, so every method
compared (pretrained, `from_scratch`, another encoder) trains on the same examples; the report
records the count per class and the SHA-256 of the example list. `from_scratch` trains the
same architecture from a random initialisation (the supervised baseline).

The fine-tuned classifier is exported as a SavedModel whose `serving_default` takes `images`
(float32 [N, H, W, 3] in [0, 1]) and returns `logits` and `probabilities` [N, C].
"""

from __future__ import annotations

import dataclasses
import os
import time

import keras
import ml_collections
import tensorflow as tf

from byol_tf.core.schedules import scaled_learning_rate
from byol_tf.data.pipeline import eval_dataset
from byol_tf.evaluation import classifier, inputs, report, subsets
from byol_tf.evaluation.setup import open_encoder, open_sources
from byol_tf.models.export import SIGNATURE_INPUT, write_archive


class Classifier(keras.Model):
    """encoder -> linear head: [0, 1] images in, logits out."""

    def __init__(self, encoder: keras.layers.Layer, num_classes: int, **kwargs):
        kwargs.setdefault("name", "classifier")
        super().__init__(**kwargs)
        self.encoder = encoder
        self.head = keras.layers.Dense(num_classes, kernel_initializer="zeros", name="head")

    def call(self, images, training=False):
        return self.head(self.encoder(images, training=training))


@dataclasses.dataclass
class FinetuneResult:
    report: dict
    model: Classifier
    subset: subsets.Subset
    export_dir: str | None


def export_classifier(model: Classifier, directory: str, image_size: int | None) -> str:
    """Writes `model` as a SavedModel: serving_default(images) -> {logits, probabilities}.

    `image_size` None leaves the spatial size open. Written atomically (`export.write_archive`).
    """
    spec = tf.TensorSpec([None, image_size, image_size, 3], tf.float32, name=SIGNATURE_INPUT)

    def serve(images):
        logits = tf.cast(model(images, training=False), tf.float32)
        return {"logits": logits, "probabilities": tf.nn.softmax(logits)}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(name="serving_default", fn=serve, input_signature=[spec])
    return write_archive(archive, directory)


def _choose_subset(train, config, label_fraction, labels_per_class, subset_file):
    given = [
        name
        for name, value in (
            ("label_fraction", label_fraction),
            ("labels_per_class", labels_per_class),
            ("subset_file", subset_file),
        )
        if value
    ]
    if len(given) > 1:
        raise ValueError(f"Give only one of {' and '.join(given)}: each defines the subset.")
    if not given:  # the config decides
        labels_per_class = config.subset.labels_per_class or None
        label_fraction = None if labels_per_class else config.subset.label_fraction
    return subsets.select_subset(
        train, label_fraction, labels_per_class, subset_file, seed=config.subset.seed
    )


def run_finetune(
    encoder_path: str,
    train_spec: str,
    test_spec: str,
    config: ml_collections.ConfigDict,
    label_fraction: float | None = None,
    labels_per_class: int | None = None,
    subset_file: str | None = None,
    from_scratch: bool = False,
    export_dir: str | None = None,
    write_subset: str | None = None,
) -> FinetuneResult:
    """Fine-tunes the encoder at `encoder_path` on a labelled subset of `train_spec`.

    At most one of `label_fraction`, `labels_per_class`, `subset_file` may be given; with none,
    `config.subset` decides. `write_subset` saves the subset's example list as a subset file.
    """
    start = time.perf_counter()
    c = config
    if label_fraction is not None:
        subsets.check_label_fraction(label_fraction)
    train, test = open_sources(train_spec, test_spec, c)
    subset = _choose_subset(train, c, label_fraction, labels_per_class, subset_file)
    if write_subset:
        subsets.write_subset_file(write_subset, subset, train)
    encoder, image_size = open_encoder(encoder_path, c, random_init=from_scratch, trainable=True)
    num_classes = max(train.num_classes, test.num_classes)
    model = Classifier(encoder, num_classes)
    model(tf.zeros([2, image_size, image_size, 3]))  # builds the head

    # The batch (and with it the learning rate) shrinks to the subset when the subset is smaller.
    batch = inputs.effective_batch(c.train.batch_size, len(subset.indices))
    steps_per_epoch = inputs.steps_per_epoch(batch, len(subset.indices))
    lr = scaled_learning_rate(c.optimizer.base_lr, batch)
    logits_fn = lambda images, training: model(images, training=training)  # noqa: E731
    losses = classifier.fit(
        logits_fn,
        model.trainable_variables,
        inputs.train_batches(train, subset.indices, c, image_size, batch, c.seed),
        c.schedule.epochs,
        steps_per_epoch,
        lr,
        name="finetune",
        **classifier.sgd_settings(c),
    )
    scores, labels = classifier.predict(
        logits_fn, eval_dataset(test, c, c.eval.batch_size, image_size)
    )
    if export_dir:
        export_classifier(model, export_dir, encoder.fixed_image_size)
    settings = {
        "lr": lr,
        "base_lr": float(c.optimizer.base_lr),
        "batch_size": batch,
        "epochs": c.schedule.epochs,
        "steps": int(round(c.schedule.epochs * steps_per_epoch)),
        "weight_decay": float(c.optimizer.weight_decay),
        "encoder_batchnorm": "training" if encoder.has_training_endpoint else "inference",
        "final_train_loss": losses[-1],
        "export_dir": os.path.abspath(export_dir) if export_dir else None,
        "subset_file": subset_file,
        "config": c.to_dict(),
    }
    data = {
        "train": train.spec,
        "test": test.spec,
        "num_train": len(subset.indices),
        "num_test": int(len(labels)),
        "num_classes": int(num_classes),
        "image_size": int(image_size),
    }
    result = report.make_report(
        "finetune",
        encoder_path,
        "random" if from_scratch else "pretrained",
        data,
        "finetune",
        settings,
        classifier.top_k_accuracy(scores, labels),
        time.perf_counter() - start,
        subset=subset.info(),
    )
    return FinetuneResult(result, model, subset, export_dir)
