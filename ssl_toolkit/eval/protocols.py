"""Evaluation protocols on frozen embeddings: EVAR's linear evaluation and the weighted kNN.

Linear evaluation (Niizumi et al.'s EVAR, as in the BYOL-A papers): the embeddings are standardized
with the training items' mean and std, then one linear layer is trained with Adam (lr 3e-4, weight
decay 1e-8) on mini-batches of min(200, N) for at most 200 epochs; after each epoch the validation
accuracy (mAP for multi-label tasks) is measured and training stops when it has not reached its best
value again for 20 epochs (as in EVAR, a tie counts as progress and the later weights are kept), with
the best epoch's weights restored for the test. Each seed draws its own
initialization, batch order and (when a task has no validation items) its own stratified 10 %
hold-out of the training items.

Weighted kNN (Wu et al. 2018, InstDisc; solo-learn's WeightedKNNClassifier): L2-normalized
features, cosine similarity to every training item, the top k = 200 neighbours vote for their class
with weight exp(similarity / 0.1); the class with the largest total wins.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..devices import torch_threads


# ----------------------------------------------------------------------------- metrics
def accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    pred, y = np.asarray(pred), np.asarray(y)
    return float((pred == y).mean()) if len(y) else float("nan")


def average_precision(scores: np.ndarray, positives: np.ndarray) -> float:
    """Average precision of one class (scores higher = more likely; tied scores are one threshold):
    scikit-learn's ``average_precision_score``; NaN when the class has no positive item."""
    from sklearn.metrics import average_precision_score

    positives = np.asarray(positives).astype(bool)
    if not positives.any():
        return float("nan")
    return float(average_precision_score(positives, np.asarray(scores)))


def mean_average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Macro mAP over the classes that have at least one positive item."""
    aps = [average_precision(scores[:, c], targets[:, c]) for c in range(targets.shape[1]) if targets[:, c].any()]
    return float(np.mean(aps)) if aps else float("nan")


def score(outputs: np.ndarray, y: np.ndarray, multi_label: bool) -> float:
    """accuracy of argmax(outputs) vs labels, or mAP of outputs vs a multi-hot matrix."""
    if multi_label:
        return mean_average_precision(outputs, y)
    return accuracy(outputs.argmax(1), y)


def confusion_matrix(y: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """(num_classes, num_classes) counts, rows = true class, columns = predicted (scikit-learn's)."""
    from sklearn.metrics import confusion_matrix as sk_confusion

    return sk_confusion(
        np.asarray(y, dtype=np.int64), np.asarray(pred, dtype=np.int64), labels=np.arange(num_classes)
    ).astype(np.int64)


# ----------------------------------------------------------------------------- splits
def holdout_split(
    y: np.ndarray, fraction: float, seed: int, multi_label: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, valid indices): ``fraction`` of each class's items held out (single-label: stratified, at
    least one from each class of two or more items, so a tiny label subset holds out more than ``fraction``;
    a class of one item stays in train), at least one item in all."""
    n = len(y)
    rng = np.random.default_rng(seed)
    if n < 2:
        raise ValueError(f"need at least 2 training items to hold some out for validation, got {n}")
    if multi_label:
        perm = rng.permutation(n)
        k = min(max(1, int(round(fraction * n))), n - 1)
        return np.sort(perm[k:]), np.sort(perm[:k])
    valid = []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if len(idx) < 2:
            continue
        idx = rng.permutation(idx)
        k = min(max(1, int(round(fraction * len(idx)))), len(idx) - 1)
        valid.append(idx[:k])
    if not valid:
        raise ValueError(
            f"every class has a single training item ({n} items), so none can be held out for validation without "
            "losing its class: give the task a valid split or a larger label_fraction"
        )
    valid_idx = np.sort(np.concatenate(valid))
    mask = np.ones(n, dtype=bool)
    mask[valid_idx] = False
    return np.flatnonzero(mask), valid_idx


def standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """(x − mean) / std with the training items' statistics (std 0 → 1), float32."""
    train = np.asarray(train, dtype=np.float64)
    mean = train.mean(0)
    std = train.std(0)
    std[~(std > 1e-12)] = 1.0
    return [((np.asarray(x, dtype=np.float64) - mean) / std).astype(np.float32) for x in (train, *others)]


# ----------------------------------------------------------------------------- linear probe
@dataclass
class ProbeResult:
    test_score: float
    valid_score: float
    best_epoch: int
    epochs_run: int
    test_outputs: np.ndarray
    """Logits (N_test, C) of the restored best model."""


def linear_probe(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    num_classes: int,
    multi_label: bool = False,
    lr: float = 3e-4,
    weight_decay: float = 1e-8,
    batch_size: int = 200,
    epochs: int = 200,
    patience: int = 20,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> ProbeResult:
    """Train one linear layer on standardized embeddings with early stopping on the valid set
    (see the module docstring). ``y_*`` are class indices, or multi-hot (N, C) when multi_label."""
    device = torch.device(device)
    # One intra-op thread on CPU: the probe's (≤200 × D) steps are too small to split, and on a
    # busy machine extra threads cost 10-50× (measured on 2 shared cores).
    with torch_threads(1) if device.type == "cpu" else contextlib.nullcontext():
        return _linear_probe(
            x_train,
            y_train,
            x_valid,
            y_valid,
            x_test,
            y_test,
            num_classes=num_classes,
            multi_label=multi_label,
            lr=lr,
            weight_decay=weight_decay,
            batch_size=batch_size,
            epochs=epochs,
            patience=patience,
            seed=seed,
            device=device,
        )


def _linear_probe(
    x_train,
    y_train,
    x_valid,
    y_valid,
    x_test,
    y_test,
    *,
    num_classes,
    multi_label,
    lr,
    weight_decay,
    batch_size,
    epochs,
    patience,
    seed,
    device,
) -> ProbeResult:
    if len(x_train) == 0:
        raise ValueError("no training items")
    if len(x_valid) == 0:
        raise ValueError("no validation items")
    xt, xv, xs = standardize(x_train, x_valid, x_test)
    xt_t, xv_t, xs_t = (torch.from_numpy(a).to(device) for a in (xt, xv, xs))
    if multi_label:
        yt_t = torch.from_numpy(np.asarray(y_train, dtype=np.float32)).to(device)
        loss_fn: nn.Module = nn.BCEWithLogitsLoss()
    else:
        yt_t = torch.from_numpy(np.asarray(y_train, dtype=np.int64)).to(device)
        loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(int(seed))
    layer = nn.Linear(xt.shape[1], num_classes)
    with torch.no_grad():  # nn.Linear's default init, drawn from our generator
        bound = 1.0 / max(xt.shape[1], 1) ** 0.5
        layer.weight.uniform_(-bound, bound, generator=gen)
        layer.bias.uniform_(-bound, bound, generator=gen)
    layer.to(device)
    opt = torch.optim.Adam(layer.parameters(), lr=lr, weight_decay=weight_decay)
    n = xt.shape[0]
    bs = max(1, min(int(batch_size), n))

    def evaluate(x: torch.Tensor) -> np.ndarray:
        layer.eval()
        with torch.no_grad():
            out = layer(x).float().cpu().numpy()
        layer.train()
        return out

    best_score, best_state, best_epoch, stale, epoch = -np.inf, None, -1, 0, 0
    for epoch in range(int(epochs)):
        order = torch.randperm(n, generator=gen).to(device)
        for start in range(0, n, bs):
            idx = order[start : start + bs]
            loss = loss_fn(layer(xt_t[idx]), yt_t[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        s = score(evaluate(xv_t), y_valid, multi_label)
        if s >= best_score or best_state is None:  # EVAR: a tie is progress (later weights win)
            best_score, best_epoch, stale = s, epoch, 0
            best_state = copy.deepcopy(layer.state_dict())
        else:
            stale += 1
            if stale >= patience:
                break
    if best_state is not None:  # always set after the first epoch
        layer.load_state_dict(best_state)
    out = evaluate(xs_t)
    return ProbeResult(
        score(out, y_test, multi_label) if len(y_test) else float("nan"), float(best_score), best_epoch, epoch + 1, out
    )


# ----------------------------------------------------------------------------- kNN
def knn_predict(
    train_x: np.ndarray | torch.Tensor,
    train_y: np.ndarray,
    test_x: np.ndarray | torch.Tensor,
    num_classes: int,
    k: int = 200,
    temperature: float = 0.1,
    chunk: int = 512,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Class scores (N_test, C) of the weighted cosine kNN; argmax gives the prediction."""
    device = torch.device(device)
    train = F.normalize(torch.as_tensor(np.asarray(train_x), dtype=torch.float32, device=device), dim=1)
    test = F.normalize(torch.as_tensor(np.asarray(test_x), dtype=torch.float32, device=device), dim=1)
    labels = torch.as_tensor(np.asarray(train_y), dtype=torch.long, device=device)
    k = min(int(k), train.shape[0])
    out = []
    for start in range(0, test.shape[0], chunk):
        sim = test[start : start + chunk] @ train.T
        top, idx = sim.topk(k, dim=1)
        weights = (top / temperature).exp()
        votes = torch.zeros(sim.shape[0], num_classes, device=device)
        votes.scatter_add_(1, labels[idx], weights)
        out.append(votes.cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, num_classes), dtype=np.float32)


def summarize(runs: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single run) of the run scores."""
    a = np.asarray(runs, dtype=np.float64)
    return float(a.mean()), (float(a.std(ddof=1)) if len(a) > 1 else 0.0)


def optional_float(x: Optional[float]) -> Optional[float]:
    return None if x is None or not np.isfinite(x) else float(x)
