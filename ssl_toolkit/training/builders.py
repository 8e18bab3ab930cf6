"""What a run is built from (the trainer's two builders, also used by the benchmarks): ``build_loader`` (the
recipe's dataset → an :class:`~ssl_toolkit.data.EpochSampler` of (seed, epoch, position) → a DataLoader of uint8
images or float waveforms) and ``build_learner`` (views, method, optimizer, schedule and precision around the
training step), with ``step_seed``, the seed of the view generator at each (step, micro-step, rank).
"""

from __future__ import annotations

import contextlib
import functools
from typing import cast

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data import DatasetError, EpochSampler, build_dataset, collate_skipping_bad
from ..engine.build import TrainableMethod, build_method
from ..recipe import Recipe
from ..registry import SCHEDULES
from ..views import ViewMaker
from .loop import TrainingError
from .optim import build_optimizer
from .step import Learner
from .sync_bn import convert_to_global_bn


def step_seed(seed: int, step: int, micro: int, rank: int) -> int:
    return hash((seed, step, micro, rank)) & 0x7FFF_FFFF_FFFF_FFFF


def build_loader(r: Recipe, device: torch.device, rank: int = 0, world_size: int = 1):
    """The recipe's dataset, its resumable epoch sampler (this rank's shard) and the DataLoader the trainer
    reads: ``(dataset, sampler, loader)``; advance epochs with ``sampler.set_position`` (and the dataset's
    ``set_epoch`` when it has one)."""
    try:
        dataset = build_dataset(r.data.dataset)
    except DatasetError as e:
        raise TrainingError(str(e)) from e
    if len(dataset) == 0:
        raise TrainingError(f"data.dataset ({r.data.dataset.name}) has zero items: nothing to train on")
    streaming = isinstance(dataset, torch.utils.data.IterableDataset)
    if streaming:  # a shard stream is its own sampler: epochs, per-rank/worker split, resume (ssl_toolkit/shards.py)
        try:
            dataset.configure(r.data.batch_size, rank, world_size)
        except ValueError as e:
            raise TrainingError(f"data.dataset ({r.data.dataset.name}): {e}") from None
        sampler = dataset
    else:
        sampler = EpochSampler(
            len(dataset),
            r.data.batch_size,
            seed=r.seed,
            shuffle=r.data.shuffle,
            drop_last=r.data.drop_last,
            rank=rank,
            world_size=world_size,
        )
    if sampler.batches_per_epoch() == 0:
        raise TrainingError(
            f"data.dataset has {len(dataset)} items: fewer than one batch of data.batch_size="
            f"{r.data.batch_size} per process; lower data.batch_size or set data.drop_last: false"
        )
    loader = DataLoader(
        dataset,
        batch_size=r.data.batch_size,
        sampler=None if streaming else sampler,
        num_workers=r.data.num_workers,
        collate_fn=collate_skipping_bad,
        pin_memory=r.data.pin_memory and device.type == "cuda",
        generator=torch.Generator().manual_seed(r.seed),  # keeps the global RNG untouched
        prefetch_factor=r.data.prefetch_factor if r.data.num_workers > 0 else None,
        persistent_workers=False,
    )
    return dataset, sampler, loader


def build_learner(
    r: Recipe,
    device: torch.device,
    global_batch: int,
    total_steps: int,
    steps_per_epoch: int,
    rank: int = 0,
    distributed: bool = False,
) -> tuple[Learner, str]:
    """What the step works on, as the recipe names it: views, method (channels_last, SyncBN under DDP),
    optimizer, lr schedule, precision; and the printed lr rule. DDP/compile wrapping comes after resume."""
    t, use_cuda = r.trainer, device.type == "cuda"
    views = ViewMaker.from_config(r.views).to(device)
    try:
        method = build_method(r).to(device)
    except ValueError as e:
        raise TrainingError(str(e)) from None
    if t.channels_last:
        method = method.to(memory_format=torch.channels_last)
    if distributed and t.sync_batchnorm:
        method = nn.SyncBatchNorm.convert_sync_batchnorm(method) if use_cuda else convert_to_global_bn(method)
    try:
        optimizer, lr_rule = build_optimizer(r.optimizer, method, global_batch)
    except ValueError as e:
        raise TrainingError(f"recipe {r.name}: {e}") from None
    lr_factor = SCHEDULES.build(
        r.schedule.name, total_steps=total_steps, steps_per_epoch=steps_per_epoch, **r.schedule.params
    )
    if r.precision == "fp16" and not use_cuda:
        raise TrainingError("precision: fp16 needs a CUDA device (GradScaler); use bf16 on CPU")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(r.precision)
    autocast = functools.partial(torch.autocast, device.type, dtype=dtype) if dtype else contextlib.nullcontext
    learner = Learner(
        model=method,
        method=cast(TrainableMethod, method),  # build_method checked the contract
        views=views,
        optimizer=optimizer,
        lr_factor=lr_factor,
        total_steps=total_steps,
        device=device,
        scaler=torch.amp.GradScaler("cuda") if r.precision == "fp16" else None,
        autocast=autocast,
        channels_last=t.channels_last,
        distributed=distributed,
        generator=torch.Generator(device=device),
        seed_of=lambda step, micro: step_seed(r.seed, step, micro, rank),
    )
    return learner, lr_rule
