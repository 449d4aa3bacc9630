"""kNN evaluation of an exported encoder: the train source is the memory bank.

Representations of centre-cropped images, in inference mode, scored with the weighted kNN of
`byol_tf.evaluation.knn` (k = `eval.knn_k`, temperature `eval.knn_temperature`; 200 and 0.1 by
default), the same as a training run's kNN check.
"""

from __future__ import annotations

import dataclasses
import time

import ml_collections

from byol_tf.evaluation import knn, report
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
    result = knn.evaluate_knn(run.encoder, run.train, run.test, c, image_size=run.image_size)
    num_train, num_test = result.pop("num_train"), result.pop("num_test")
    settings = {
        "k": int(min(c.eval.knn_k, num_train)),
        "temperature": float(c.eval.knn_temperature),
        "config": c.to_dict(),
    }
    result = report.make_report(
        "knn_eval",
        encoder_path,
        run.init,
        run.data_record(num_train, num_test),
        "knn",
        settings,
        result,
        time.perf_counter() - start,
    )
    return KnnResult(result)
