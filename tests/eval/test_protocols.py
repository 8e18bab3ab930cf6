"""The linear-evaluation protocol and the kNN on synthetic embeddings."""

import numpy as np
import pytest

from ssl_toolkit.eval.protocols import (
    average_precision,
    holdout_split,
    knn_predict,
    linear_probe,
    mean_average_precision,
    standardize,
    summarize,
)


def clusters(n_per_class=60, classes=5, dim=32, spread=0.5, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * 3
    y = np.repeat(np.arange(classes), n_per_class)
    x = centres[y] + spread * rng.normal(size=(len(y), dim))
    perm = rng.permutation(len(y))
    return x[perm].astype(np.float32), y[perm]


def split3(x, y):
    n = len(y)
    a, b = int(0.6 * n), int(0.75 * n)
    return (x[:a], y[:a]), (x[a:b], y[a:b]), (x[b:], y[b:])


def test_separable_features_reach_full_accuracy():
    x, y = clusters()
    (xt, yt), (xv, yv), (xs, ys) = split3(x, y)
    res = linear_probe(xt, yt, xv, yv, xs, ys, num_classes=5, seed=0)
    assert res.test_score >= 0.99
    assert res.valid_score >= 0.99
    assert res.test_outputs.shape == (len(ys), 5)


def test_random_labels_give_chance():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 32)).astype(np.float32)
    y = rng.integers(0, 4, 600)
    (xt, yt), (xv, yv), (xs, ys) = split3(x, y)
    scores = [linear_probe(xt, yt, xv, yv, xs, ys, num_classes=4, seed=s).test_score for s in range(3)]
    assert abs(np.mean(scores) - 0.25) < 0.08


def test_early_stopping_restores_the_best_epoch_and_is_deterministic():
    x, y = clusters(spread=3.0, seed=2)
    (xt, yt), (xv, yv), (xs, ys) = split3(x, y)
    a = linear_probe(xt, yt, xv, yv, xs, ys, num_classes=5, seed=3, epochs=200, patience=5)
    b = linear_probe(xt, yt, xv, yv, xs, ys, num_classes=5, seed=3, epochs=200, patience=5)
    assert a.test_score == b.test_score and a.best_epoch == b.best_epoch
    assert a.epochs_run <= 200 and a.best_epoch < a.epochs_run
    assert a.epochs_run - 1 - a.best_epoch <= 5  # stopped within `patience` epochs of the best
    c = linear_probe(xt, yt, xv, yv, xs, ys, num_classes=5, seed=4, epochs=200, patience=5)
    assert not np.array_equal(a.test_outputs, c.test_outputs)  # another seed draws another model


def test_multi_label_probe_and_map():
    rng = np.random.default_rng(0)
    n, c, d = 400, 4, 16
    targets = (rng.random((n, c)) < 0.35).astype(np.float32)
    x = (targets @ rng.normal(size=(c, d)) * 2 + 0.3 * rng.normal(size=(n, d))).astype(np.float32)
    res = linear_probe(
        x[:250],
        targets[:250],
        x[250:300],
        targets[250:300],
        x[300:],
        targets[300:],
        num_classes=c,
        multi_label=True,
        seed=0,
        lr=1e-2,
    )
    assert res.test_score > 0.95


def test_average_precision_and_confusion_by_hand():
    from ssl_toolkit.eval.protocols import confusion_matrix

    # ranks 1..4: hit, miss, hit, miss → AP = (1/1 + 2/3) / 2
    assert average_precision(np.array([0.9, 0.8, 0.7, 0.6]), np.array([1, 0, 1, 0])) == pytest.approx(5 / 6)
    # a tie at the top between a hit and a miss is one threshold: precision 1/2 at recall 1/2, then 2/3 at 1
    assert average_precision(np.array([0.9, 0.9, 0.5]), np.array([1, 0, 1])) == pytest.approx(0.5 * 0.5 + 0.5 * 2 / 3)
    assert np.isnan(average_precision(np.array([0.1, 0.2]), np.array([0, 0])))
    targets = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    scores = np.array([[0.9, 0.1, 0.3], [0.2, 0.6, 0.1], [0.4, 0.7, 0.2]])  # class 2 has no positive: left out
    assert mean_average_precision(scores, targets) == pytest.approx((1.0 + 0.5) / 2)
    cm = confusion_matrix(np.array([0, 0, 1, 2, 2, 2]), np.array([0, 1, 1, 2, 0, 2]), 4)
    assert cm.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0], [0, 0, 0, 0]] and cm.dtype == np.int64


def test_holdout_is_stratified_disjoint_and_seeded():
    y = np.repeat(np.arange(4), [50, 30, 10, 1])
    tr, va = holdout_split(y, 0.1, seed=0)
    assert len(np.intersect1d(tr, va)) == 0 and len(tr) + len(va) == len(y)
    assert [int((y[va] == c).sum()) for c in range(4)] == [5, 3, 1, 0]  # a single-item class stays in train
    tr2, va2 = holdout_split(y, 0.1, seed=1)
    assert not np.array_equal(va, va2)
    assert np.array_equal(holdout_split(y, 0.1, seed=0)[1], va)
    _, small = holdout_split(np.repeat(np.arange(3), 4), 0.1, seed=0)  # round(0.4) = 0: one from each class still
    assert len(small) == 3
    with pytest.raises(ValueError, match="every class has a single training item .* give the task a valid split"):
        holdout_split(np.arange(10), 0.1, seed=0)  # a hold-out would take a class out of training


def test_standardize_uses_train_statistics():
    rng = np.random.default_rng(0)
    tr = rng.normal(5, 3, size=(100, 4))
    tr[:, 3] = 1.0  # constant column: std 0 -> 1
    te = rng.normal(5, 3, size=(10, 4))
    a, b = standardize(tr, te)
    assert np.allclose(a[:, :3].mean(0), 0, atol=1e-5) and np.allclose(a[:, :3].std(0), 1, atol=1e-4)
    assert np.allclose(b, (te - tr.mean(0)) / np.where(tr.std(0) > 0, tr.std(0), 1), atol=1e-5)
    assert np.isfinite(a).all()


def test_weighted_knn():
    x, y = clusters(spread=0.3)
    out = knn_predict(x[:200], y[:200], x[200:], num_classes=5, k=20, temperature=0.1)
    assert out.shape == (len(y) - 200, 5)
    assert (out.argmax(1) == y[200:]).mean() > 0.99
    # k larger than the training set is clipped; random labels give about chance
    rng = np.random.default_rng(0)
    r = knn_predict(x[:50], rng.integers(0, 5, 50), x[50:], num_classes=5, k=200)
    assert r.shape == (len(y) - 50, 5)


def test_summarize():
    assert summarize([0.5]) == (0.5, 0.0)
    m, s = summarize([0.4, 0.6])
    assert m == pytest.approx(0.5) and s == pytest.approx(np.std([0.4, 0.6], ddof=1))
