"""kNN evaluation against a hand-computed example and a NumPy reference."""

import numpy as np
import pytest

from byol_tf.distributed.strategies import check_tf_config
from byol_tf.evaluation import knn


def numpy_knn_scores(train_x, train_y, test_x, num_classes, k, t):
    train = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
    test = test_x / np.linalg.norm(test_x, axis=1, keepdims=True)
    sims = test @ train.T
    scores = np.zeros((len(test), num_classes))
    for i, row in enumerate(sims):
        top = np.argsort(-row, kind="stable")[:k]
        for j in top:
            scores[i, train_y[j]] += np.exp(row[j] / t)
    return scores


def test_hand_made_example():
    # Two clusters on the unit circle; the query sits next to class 1.
    train_x = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]], np.float32)
    train_y = np.array([0, 0, 1, 1])
    test_x = np.array([[0.05, 1.0], [1.0, -0.05]], np.float32)
    acc = knn.knn_accuracy(
        train_x, train_y, test_x, np.array([1, 0]), num_classes=2, k=3, temperature=0.1
    )
    assert acc == {"top1": 1.0, "top5": 1.0}
    # With k=3 the query votes once for the far cluster; the weight makes the near one win.
    scores = knn.knn_predict(train_x, train_y, test_x[:1], 2, k=3, temperature=0.1).numpy()
    assert scores[0, 1] > scores[0, 0] > 0


def test_matches_numpy_reference():
    rng = np.random.default_rng(0)
    train_x, test_x = rng.normal(size=(50, 8)), rng.normal(size=(7, 8))
    train_y = rng.integers(0, 4, 50)
    got = knn.knn_predict(train_x, train_y, test_x, 4, k=10, temperature=0.5, chunk_size=3).numpy()
    np.testing.assert_allclose(
        got, numpy_knn_scores(train_x, train_y, test_x, 4, 10, 0.5), rtol=1e-5
    )


def test_tf_config_errors_name_the_problem():
    with pytest.raises(ValueError, match="not valid JSON"):
        check_tf_config("{cluster:")
    cluster = '{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 2}}'
    with pytest.raises(ValueError, match="index 2 is outside the 2 'worker'"):
        check_tf_config(cluster)
    with pytest.raises(ValueError, match="TF_CONFIG environment variable"):
        check_tf_config("")
