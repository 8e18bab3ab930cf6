"""Evaluation plots: the t-SNE map's stratified sample and its settings (results.md's note on the map:
tests/eval/test_runner.py)."""

import numpy as np
import pytest

from ssl_toolkit.eval import plots


@pytest.mark.parametrize("n", [10, 37, 100])
def test_stratified_sample_keeps_each_label_share(n):
    y = np.repeat([0, 1, 2, 3], [500, 300, 150, 50])
    idx = plots.stratified_sample(y, n, seed=3)
    assert len(idx) == n == len(set(idx.tolist())) and np.all(np.diff(idx) > 0)
    counts = np.bincount(y[idx], minlength=4)
    assert np.all(np.abs(counts - n * np.array([0.5, 0.3, 0.15, 0.05])) < 1)  # largest remainders
    assert np.array_equal(idx, plots.stratified_sample(y, n, seed=3))  # fixed seed, fixed sample


def test_tsne_map_uses_the_sample_and_the_iterations(tmp_path, monkeypatch):
    seen = {}

    class FakeTSNE:
        def __init__(self, **kw):
            seen.update(kw)

        def fit_transform(self, x):
            seen["n"] = len(x)
            return np.zeros((len(x), 2))

    import sklearn.manifold

    monkeypatch.setattr(sklearn.manifold, "TSNE", FakeTSNE)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    out = plots.tsne_plot(
        rng.standard_normal((400, 64)), y, ["a", "b", "c"], "t", tmp_path / "m.png", max_points=120, max_iter=300
    )
    assert out.is_file() and seen["n"] == 120 and seen["max_iter"] == 300
