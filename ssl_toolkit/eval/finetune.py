"""The ``finetune`` protocol: the whole encoder and a new head trained end to end on a task's labels.

Follows EVAR's ``finetune.py`` (the BYOL-A authors' evaluation package) and, for images, BYOL's App. C.1:

- head: ``BatchNorm1d(affine=False)`` then ``Linear`` initialized N(0, 0.01²), bias 0 (EVAR's ``TaskHead``);
- SGD, momentum 0.9 (``nesterov`` as the recipe says; BYOL's images use it), weight decay 0; the learning rate
  rises linearly from 0 over
  ``warmup_epochs`` then follows a cosine to 1e-7 at ``epochs``, updated every step (EVAR's timm
  ``CosineLRScheduler(t_initial=epochs, lr_min=1e-7, warmup_t=warmup_epochs, warmup_lr_init=0)``, see
  :func:`lr_at`);
- loss: cross-entropy against (mixed) one-hot targets, mean over the batch (EVAR's ``loss_nll`` is the same
  divided by the class count); multi-label: binary cross-entropy, mean over items and classes (EVAR's
  ``loss_bce``);
- per step, in order: mixup of inputs and targets (λ ~ Beta(α, α) per sample, partner a permutation of the
  batch), the frozen front end (no gradient), the ``augment`` ops per sample (e.g. SpecAugment then random
  resize crop, EVAR's order), the encoder (trainable, BatchNorm in train mode unless ``freeze_bn``) under
  bf16 autocast, the head in fp32;
- after each epoch the validation score (accuracy or mAP) of the eval-mode network; the epoch with the best score
  (strictly better, EVAR's rule) is restored for the test, or with ``select_epoch: last`` the last epoch is tested
  (BYOL App. C.1: fixed epochs, the held-out items choose hyperparameters only). Unlike EVAR, which scores the
  test split as its validation set when a task has none, the validation items here are always training items or
  the task's valid split: the test split is read once, at the end.

Each run is deterministic per seed: the head's initialization, dropout (the global RNG, forked), the batch order,
crops and mixup (a NumPy generator) and the augmentations (a torch generator) all derive from it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..devices import precision_autocast
from ..registry import AUGMENTATIONS
from .protocols import score

LR_MIN = 1e-7


def lr_at(t: float, lr: float, epochs: float, warmup_epochs: float, lr_min: float = LR_MIN) -> float:
    """The learning rate at ``t`` epochs (fractional): linear from 0 over the warm-up, then cosine from ``lr`` at
    t = 0 to ``lr_min`` at ``epochs`` (timm's CosineLRScheduler without warm-up prefix, as EVAR uses it)."""
    if t < warmup_epochs:
        return lr * t / warmup_epochs
    return lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * min(t, epochs) / epochs))


class TaskHead(nn.Module):
    """EVAR's fine-tuning head: BatchNorm1d without affine parameters, then Linear (weights N(0, 0.01²), bias 0)."""

    def __init__(self, dim: int, num_classes: int, generator: Optional[torch.Generator] = None):
        super().__init__()
        self.norm = nn.BatchNorm1d(dim, affine=False)
        self.linear = nn.Linear(dim, num_classes)
        with torch.no_grad():
            self.linear.weight.normal_(0.0, 0.01, generator=generator)
            self.linear.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(x))


@dataclass
class FinetuneInputs:
    """What the protocol needs from a task's modality.

    ``train_batch(rows, rng)``: the raw training batch of ``rows`` on the device (audio: one random ``unit_sec``
    crop per clip, zero-padded; images: uint8); ``features(encoder, rows)``: (len(rows), D) embeddings of the rows
    by the eval-mode ``encoder`` with the evaluation's rule (audio: mean over ``unit_sec`` pieces); ``frontend``:
    the deterministic ops from the raw batch to the encoder input (their statistics set for this unit)."""

    train_batch: Callable[[np.ndarray, np.random.Generator], torch.Tensor]
    features: Callable[[nn.Module, np.ndarray], np.ndarray]
    frontend: list


@dataclass
class FinetuneResult:
    test_score: float
    valid_score: float
    best_epoch: int
    epochs_run: int
    test_outputs: np.ndarray
    curve: dict = field(default_factory=dict)
    """Per epoch: train_loss (mean over its steps), valid (score), lr (of its last step)."""
    encoder: Optional[nn.Module] = None
    """The fine-tuned encoder (the selected epoch, eval mode) and its head."""
    head: Optional[TaskHead] = None


def trainable_copy(encoder: nn.Module, freeze_bn: bool = False) -> nn.Module:
    """A copy of ``encoder`` whose every parameter trains (BatchNorm in train mode unless ``freeze_bn``)."""
    enc = copy.deepcopy(encoder)
    params = list(enc.parameters())
    if not params:
        raise ValueError(f"encoder {type(encoder).__name__} has no parameters to fine-tune")
    for p in params:
        p.requires_grad_(True)
    set_train_mode(enc, freeze_bn)
    return enc


def set_train_mode(enc: nn.Module, freeze_bn: bool) -> None:
    enc.train()
    if freeze_bn:
        for m in enc.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()


def _targets(y: np.ndarray, num_classes: int, multi_label: bool, device) -> torch.Tensor:
    if multi_label:
        return torch.as_tensor(np.asarray(y, dtype=np.float32), device=device)
    return F.one_hot(torch.as_tensor(np.asarray(y, dtype=np.int64), device=device), num_classes).float()


def _mix(x: torch.Tensor, lam: torch.Tensor, partner: torch.Tensor) -> torch.Tensor:
    lam = lam.to(x.dtype).view(-1, *([1] * (x.ndim - 1)))
    return lam * x + (1 - lam) * x[partner]


def _loss(logits: torch.Tensor, target: torch.Tensor, multi_label: bool) -> torch.Tensor:
    if multi_label:
        return F.binary_cross_entropy_with_logits(logits, target)
    return -(target * F.log_softmax(logits, dim=-1)).sum(-1).mean()


def _outputs(head: TaskHead, feats: np.ndarray, device) -> np.ndarray:
    head.eval()
    with torch.no_grad():
        out = head(torch.as_tensor(feats, dtype=torch.float32, device=device)).float().cpu().numpy()
    head.train()
    return out


def finetune(
    encoder: nn.Module,
    inputs: FinetuneInputs,
    labels: np.ndarray,
    train: np.ndarray,
    valid: np.ndarray,
    test: np.ndarray,
    *,
    num_classes: int,
    multi_label: bool,
    cfg,
    seed: int,
    device: torch.device,
    precision: str,
    progress: bool = False,
    desc: str = "fine-tuning",
) -> FinetuneResult:
    """Fine-tune a copy of ``encoder`` (``encoder`` itself is untouched) on rows ``train`` of ``labels``, score
    ``valid`` after each epoch, test the best epoch (or the last: ``cfg.select_epoch``) on ``test``. ``cfg``: the
    eval recipe's ``finetune`` section."""
    from tqdm.auto import tqdm

    if len(train) < 2 or len(valid) == 0:
        raise ValueError(
            f"fine-tuning needs at least 2 training and 1 validation item, got {len(train)} and {len(valid)}"
        )
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        enc = trainable_copy(encoder, cfg.freeze_bn).to(device)
        head = TaskHead(int(getattr(encoder, "feature_dim")), num_classes, torch.Generator().manual_seed(seed)).to(
            device
        )
        augment = [AUGMENTATIONS.build(c.name, **dict(c.params)).to(device) for c in cfg.augment]
        opt = torch.optim.SGD(
            list(enc.parameters()) + list(head.parameters()),
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov and cfg.momentum > 0,
            weight_decay=cfg.weight_decay,
        )
        rng = np.random.default_rng(seed)
        gen = torch.Generator(device).manual_seed(seed)
        n, bs = len(train), max(2, min(int(cfg.batch_size), len(train)))
        starts = [s for s in range(0, n, bs) if n - s >= 2]  # a last batch of 1 item cannot feed BatchNorm
        best, best_state, best_epoch, stale = -np.inf, None, -1, 0
        curve: dict = {"train_loss": [], "valid": [], "lr": []}
        bar = tqdm(range(int(cfg.epochs)), desc=desc, unit="epoch", disable=not progress, leave=False)
        for epoch in bar:
            order = train[rng.permutation(n)]
            loss_sum = torch.zeros((), device=device)
            for i, s in enumerate(starts):
                lr = lr_at(epoch + i / len(starts), cfg.lr, cfg.epochs, cfg.warmup_epochs)
                for g in opt.param_groups:
                    g["lr"] = lr
                rows = order[s : s + bs]
                loss = _step(
                    enc, head, augment, inputs, rows, labels, rng, gen, num_classes, multi_label, cfg, device, precision
                )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += loss.detach()
            enc.eval()
            v = score(_outputs(head, inputs.features(enc, valid), device), labels[valid], multi_label)
            set_train_mode(enc, cfg.freeze_bn)
            curve["train_loss"].append(float(loss_sum) / len(starts))
            curve["valid"].append(float(v))
            curve["lr"].append(lr)
            if cfg.select_epoch == "last":  # BYOL App. C.1: a fixed number of epochs
                best, best_epoch = v, epoch
            elif v > best or best_state is None:  # EVAR: strictly better
                best, best_epoch, stale = v, epoch, 0
                best_state = (copy.deepcopy(enc.state_dict()), copy.deepcopy(head.state_dict()))
            else:
                stale += 1
                if cfg.patience and stale >= cfg.patience:
                    break
        if best_state is not None:
            enc.load_state_dict(best_state[0])
            head.load_state_dict(best_state[1])
        enc.eval()
        out = _outputs(head, inputs.features(enc, test), device)
    return FinetuneResult(
        score(out, labels[test], multi_label) if len(test) else float("nan"),
        float(best),
        best_epoch,
        epoch + 1,
        out,
        curve,
        enc,
        head,
    )


def _step(
    enc, head, augment, inputs: FinetuneInputs, rows, labels, rng, gen, num_classes, multi_label, cfg, device, precision
) -> torch.Tensor:
    """One training step's loss: mixup → front end → augment → encoder → head."""
    x = inputs.train_batch(rows, rng)
    y = _targets(labels[rows], num_classes, multi_label, device)
    mix = None
    if cfg.mixup > 0:
        mix = (
            torch.as_tensor(rng.beta(cfg.mixup, cfg.mixup, size=len(rows)), dtype=torch.float32, device=device),
            torch.as_tensor(rng.permutation(len(rows)), device=device),
        )
        y = _mix(y, *mix)
    with torch.no_grad():
        if mix is not None and x.is_floating_point():  # audio: mix the waveforms (EVAR)
            x, mix = _mix(x, *mix), None
        for op in inputs.frontend:
            x = op(x, None)
        if mix is not None:  # images: after to_float (+ normalize, an affine map: the same as mixing pixels)
            x = _mix(x, *mix)
        for op in augment:
            x = op(x, gen)
    with precision_autocast(device, precision):
        z = enc(x)
    return _loss(head(z.float()), y, multi_label)
