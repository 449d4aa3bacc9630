"""kNN evaluation of an exported encoder: the train source is the memory bank.

Representations of centre-cropped images, in inference mode, scored with the weighted kNN of
`byol_tf.evaluation.knn` (k = `knn.k`, temperature `knn.temperature`; 200 and 0.1 by default).
"""

from __future__ import annotations

import dataclasses
import time

import ml_collections

from byol_tf.evaluation import inputs, knn, report
from byol_tf.evaluation.setup import open_run


@dataclasses.dataclass
class KnnResult:
    report: dict


def run_knn_eval(
    encoder_path: str,
    train_spec: str,
    test_spec: str,
    config: ml_collections.ConfigDict,
    random_init: bool = False,
) -> KnnResult:
    """kNN accuracy of the SavedModel at `encoder_path` (or of its random-initialised twin)."""
    start = time.perf_counter()
    c = config
    run = open_run(encoder_path, train_spec, test_spec, c, random_init=random_init)
    features = {}
    for role, source in (("train", run.train), ("test", run.test)):
        ds = inputs.eval_batches(source, None, c, run.image_size, c.eval.batch_size)
        features[role] = knn.representations(run.encoder, ds)
    accuracy = knn.knn_accuracy(
        *features["train"],
        *features["test"],
        run.num_classes,
        k=c.knn.k,
        temperature=c.knn.temperature,
    )
    num_train = len(features["train"][1])
    settings = {
        "k": int(min(c.knn.k, num_train)),
        "temperature": float(c.knn.temperature),
        "config": c.to_dict(),
    }
    result = report.make_report(
        "knn_eval",
        encoder_path,
        run.init,
        run.data_record(num_train, len(features["test"][1])),
        "knn",
        settings,
        accuracy,
        time.perf_counter() - start,
    )
    return KnnResult(result)
