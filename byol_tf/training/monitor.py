"""The kNN monitor: representation quality measured during pretraining.

`KnnMonitor` is a Keras callback of the BYOL loop. Every `eval.knn_every_epochs` epochs it
encodes `eval.knn_train` (the memory bank) and `eval.knn_test` with the online encoder in
inference mode, scores the weighted kNN (`eval.knn_k`, `eval.knn_temperature`), and logs
`knn_top1` and `knn_top5` through the run's logger, to `metrics.jsonl` and TensorBoard. A
rising curve shows the representation improving; a falling one, or `collapse_std` near 0,
flags collapse early. It never touches the weights or the optimizer, so training is the same
with or without it.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import ml_collections
from absl import logging

from byol_tf import data as data_lib
from byol_tf.evaluation import knn


class KnnMonitor(keras.callbacks.Callback):
    def __init__(
        self,
        encoder: keras.Model,
        config: ml_collections.ConfigDict,
        steps_per_epoch: int,
        log: Callable[[int, dict], dict],
        enabled: bool = True,
    ):
        super().__init__()
        self.encoder = encoder
        self.config = config
        self.every_epochs = int(config.eval.knn_every_epochs)
        self.steps_per_epoch = steps_per_epoch
        self.log = log
        self.enabled = enabled and self.every_epochs > 0
        self.history: list[dict] = []
        self._sources = None
        self._forward = None

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.enabled and self._sources is None:
            c = self.config
            # Opened once per run: a folder is scanned and a TFDS split checked only here.
            self._sources = (
                data_lib.load_source(c.eval.knn_train, c),
                data_lib.load_source(c.eval.knn_test, c),
            )
            # Before the first step, rather than at the first evaluation epochs later.
            data_lib.check_same_classes(*self._sources)
            self._forward = knn.inference_forward(self.encoder, self.config.data.image_size)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not self.enabled or (epoch + 1) % self.every_epochs:
            return
        if self._sources is None:
            self.on_train_begin()
        accuracy = knn.evaluate_knn(self.encoder, *self._sources, self.config, self._forward)
        step = (epoch + 1) * self.steps_per_epoch
        record = self.log(step, {"knn_top1": accuracy["top1"], "knn_top5": accuracy["top5"]})
        self.history.append(record)
        logging.info(
            "Epoch %d: kNN top-1 %.2f%%, top-5 %.2f%%",
            epoch + 1,
            100 * accuracy["top1"],
            100 * accuracy["top5"],
        )
