"""The training loop: views on the device, the method's loss, optimizer + schedule, EMA, DDP,
metrics, atomic checkpoints and exact resume.

Randomness is reproducible by construction: the view augmentations draw from a device
generator reseeded from (seed, step, micro-step, rank) at every step; model randomness (dropout)
uses the global RNG, whose states are saved in checkpoints; the data order is a function of
(seed, epoch) and the position inside the epoch is checkpointed.
"""
from __future__ import annotations

import contextlib
import os
import random
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader

from ..data import BadFileError, EpochSampler, collate_skipping_bad, preparation_batches
from ..recipe import Recipe, to_plain
from ..registry import DATASETS, ENCODERS, HEADS, METHODS, SCHEDULES
from ..views import ViewMaker
from . import checkpoint as ckpt
from .distributed import barrier, broadcast_object, init_distributed, shutdown
from .metrics import MetricsWriter
from .optim import build_optimizer
from .sync_bn import convert_to_global_bn

CHECKPOINT_FORMAT = "ssl_toolkit.checkpoint/1"


class TrainingError(RuntimeError):
    """A run that cannot start or continue, with what to do about it."""


class NonFiniteLossError(TrainingError):
    pass


def build_method(recipe: Recipe) -> nn.Module:
    """Encoder → heads → method, exactly as the recipe names them."""
    m = recipe.model
    encoder = ENCODERS.build(m.encoder.name, **m.encoder.params)
    if not hasattr(encoder, "feature_dim"):
        raise TrainingError(f"encoder '{m.encoder.name}' has no feature_dim attribute")
    projector = HEADS.build(m.projector.name, in_dim=encoder.feature_dim, **m.projector.params)
    predictor = None
    if m.predictor is not None:
        predictor = HEADS.build(m.predictor.name, in_dim=getattr(projector, "out_dim"), **m.predictor.params)
    return METHODS.build(recipe.method.name, encoder=encoder, projector=projector, predictor=predictor,
                         ema=recipe.ema, **recipe.method.params)


def default_run_dir(recipe: Recipe) -> Path:
    if recipe.out_dir:
        return Path(recipe.out_dir).expanduser()
    return Path("runs") / f"{recipe.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def _rng_state() -> dict:
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _step_seed(seed: int, step: int, micro: int, rank: int) -> int:
    return hash((seed, step, micro, rank)) & 0x7FFF_FFFF_FFFF_FFFF


class _StopSignal:
    """SIGTERM / SIGUSR1 (preemption) ask the loop to checkpoint and exit at the next step."""

    def __init__(self):
        self.received: int | None = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGUSR1):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread: leave the default handlers
                pass
        return self

    def _handle(self, signum, frame):
        self.received = signum

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


@dataclass
class _Position:
    step: int = 0
    epoch: int = 0
    batches_done: int = 0
    skipped: dict = field(default_factory=dict)
    window_loss: float = 0.0
    """Sum of step losses since the last logged row, as restored from a checkpoint."""
    window_steps: int = 0


def build_loader(r: Recipe, device: torch.device, rank: int = 0, world_size: int = 1):
    """The recipe's dataset, its resumable epoch sampler (this rank's shard) and the DataLoader the trainer
    reads: ``(dataset, sampler, loader)``; advance epochs with ``sampler.set_position`` (and the dataset's
    ``set_epoch`` when it has one)."""
    try:
        dataset = DATASETS.build(r.data.dataset.name, **r.data.dataset.params)
    except (OSError, ValueError, BadFileError) as e:  # missing folders/files, bad metadata, on_bad_file: fail
        raise TrainingError(f"data.dataset ({r.data.dataset.name}): {e}") from e
    if len(dataset) == 0:
        raise TrainingError(f"data.dataset ({r.data.dataset.name}) has zero items: nothing to train on")
    sampler = EpochSampler(len(dataset), r.data.batch_size, seed=r.seed, shuffle=r.data.shuffle,
                           drop_last=r.data.drop_last, rank=rank, world_size=world_size)
    if sampler.batches_per_epoch() == 0:
        raise TrainingError(
            f"data.dataset has {len(dataset)} items: fewer than one batch of data.batch_size="
            f"{r.data.batch_size} per process; lower data.batch_size or set data.drop_last: false")
    loader = DataLoader(
        dataset, batch_size=r.data.batch_size, sampler=sampler, num_workers=r.data.num_workers,
        collate_fn=collate_skipping_bad, pin_memory=r.data.pin_memory and device.type == "cuda",
        generator=torch.Generator().manual_seed(r.seed),  # keeps the global RNG untouched
        prefetch_factor=r.data.prefetch_factor if r.data.num_workers > 0 else None,
        persistent_workers=False,
    )
    return dataset, sampler, loader


class Trainer:
    """Runs one recipe into one run directory (see the README for its contents)."""

    def __init__(self, recipe: Recipe, out_dir: str | Path | None = None, resume: str | None = None,
                 quiet: bool = False):
        self.recipe, self.resume, self.quiet = recipe, resume, quiet
        self.dist, self.device = init_distributed(recipe.device)
        if resume is None and int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")) > 0:
            self.resume = resume = "auto"  # torchrun restarted the workers: continue where the job was
        if resume == "auto" and out_dir is None and recipe.out_dir is None:
            raise TrainingError("--resume auto needs the run directory: pass --out DIR (or set out_dir)")
        run_dir = Path(out_dir) if out_dir is not None else default_run_dir(recipe)
        self.run_dir = Path(broadcast_object(str(run_dir), self.dist))
        self.is_main = self.dist.is_main

    # ------------------------------------------------------------------ set-up
    def _log(self, msg: str) -> None:
        if self.is_main and not self.quiet:
            print(msg, file=sys.stderr, flush=True)

    def _build_data(self):
        return build_loader(self.recipe, self.device, self.dist.rank, self.dist.world_size)

    def _find_resume_checkpoint(self) -> dict | None:
        if self.resume is None:
            return None
        if self.resume == "auto":
            candidates = ckpt.checkpoint_candidates(self.run_dir)
            if not candidates:
                self._log(f"--resume auto: no checkpoint in {self.run_dir}/checkpoints; starting from scratch")
                return None
        else:
            path = Path(self.resume)
            candidates = ckpt.checkpoint_candidates(path) if path.is_dir() else [path]
            if not candidates:
                raise TrainingError(f"--resume {self.resume}: no checkpoint found there")
        errors = []
        for path in candidates:
            try:
                state = ckpt.load_checkpoint(path, map_location=self.device)
            except ckpt.CheckpointError as e:
                errors.append(str(e))
                self._log(f"warning: {e}; trying an older checkpoint")
                continue
            if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
                errors.append(f"{path}: not an ssl_toolkit training checkpoint")
                continue
            self._log(f"resuming from {path} (step {state['step']})")
            return state
        raise TrainingError("no usable checkpoint to resume from:\n  " + "\n  ".join(errors))

    # ------------------------------------------------------------------ checkpoints
    def _save(self, pos: _Position, name: str) -> Path | None:
        if not self.is_main:
            return None
        state = {
            "format": CHECKPOINT_FORMAT,
            "recipe": self.recipe.to_dict(),
            "step": pos.step, "epoch": pos.epoch, "batches_done": pos.batches_done,
            "method": self.method.state_dict(),
            "views": self.views.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else {},
            "rng": _rng_state(),
            "skipped": [[p, r] for p, r in pos.skipped.items()],
            "window": [float(self._loss_sum), pos.window_steps],
        }
        path = ckpt.atomic_save(state, self.run_dir / "checkpoints" / name)
        if name != "last.pt":
            ckpt.prune_periodic(self.run_dir, self.recipe.trainer.keep_checkpoints)
        return path

    # ------------------------------------------------------------------ the run
    def fit(self) -> Path:
        r, t = self.recipe, self.recipe.trainer
        torch.manual_seed(r.seed)
        np.random.seed(r.seed % 2**32)
        random.seed(r.seed)
        dataset, sampler, loader = self._build_data()
        accum = t.grad_accum_steps
        steps_per_epoch = sampler.batches_per_epoch() // accum
        if steps_per_epoch == 0:
            raise TrainingError(f"trainer.grad_accum_steps={accum} exceeds the {sampler.batches_per_epoch()} "
                                "batches of one epoch")
        total_steps = t.max_steps if t.max_steps is not None else t.epochs * steps_per_epoch
        global_batch = r.data.batch_size * self.dist.world_size * accum

        self.views = ViewMaker.from_config(r.views).to(self.device)
        self.method = build_method(r).to(self.device)
        if t.channels_last:
            self.method = self.method.to(memory_format=torch.channels_last)
        if self.dist.enabled and t.sync_batchnorm:
            self.method = (nn.SyncBatchNorm.convert_sync_batchnorm(self.method) if self.device.type == "cuda"
                           else convert_to_global_bn(self.method))
        self.optimizer, lr_rule = build_optimizer(r.optimizer, self.method, global_batch)
        lr_factor = SCHEDULES.build(r.schedule.name, total_steps=total_steps, steps_per_epoch=steps_per_epoch,
                                    **r.schedule.params)
        use_cuda = self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda") if (r.precision == "fp16" and use_cuda) else None
        if r.precision == "fp16" and not use_cuda:
            raise TrainingError("precision: fp16 needs a CUDA device (GradScaler); use bf16 on CPU")
        autocast = (torch.autocast(self.device.type, dtype=torch.bfloat16) if r.precision == "bf16" else
                    torch.autocast(self.device.type, dtype=torch.float16) if r.precision == "fp16" else
                    contextlib.nullcontext())

        state = self._find_resume_checkpoint()
        pos = _Position()
        self.views.prepare(preparation_batches(dataset, r.data.batch_size, r.data.num_workers, r.seed, self.device),
                           self.device,
                           self.run_dir if self.is_main else None, dataset)
        if state is not None:
            self.method.load_state_dict(state["method"])
            self.views.load_state_dict(state["views"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scaler is not None and state["scaler"]:
                self.scaler.load_state_dict(state["scaler"])
            pos = _Position(state["step"], state["epoch"], state["batches_done"], dict(map(tuple, state["skipped"])),
                            *state["window"])
            _set_rng_state(state["rng"])

        model: nn.Module = self.method
        if self.dist.enabled:
            model = nn.parallel.DistributedDataParallel(
                model, device_ids=[self.device.index] if use_cuda else None, forward_sync_buffers=False)
        if t.compile:
            model = torch.compile(model)

        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "recipe.yaml").write_text(yaml.safe_dump(to_plain(r.to_dict()), sort_keys=False))
        barrier(self.dist)
        metrics = MetricsWriter(self.run_dir, pos.step if state else None, t.tensorboard) if self.is_main else None
        self._log(f"run dir: {self.run_dir}\n{lr_rule}\n{total_steps} steps "
                  f"({steps_per_epoch}/epoch, global batch {global_batch}, {self.dist.world_size} process(es), "
                  f"{self.device}, {r.precision})")

        progress = None
        if self.is_main and t.progress and not self.quiet:
            from tqdm.auto import tqdm

            progress = tqdm(total=total_steps, initial=pos.step, desc=r.name, unit="step", dynamic_ncols=True)

        gen = torch.Generator(device=self.device)
        bad_step = torch.full((), -1, dtype=torch.long, device=self.device)
        # float32 on the device, continued from the checkpoint, so a resumed run logs the same bits
        loss_sum = self._loss_sum = torch.full((), pos.window_loss, device=self.device)
        window_samples, window_start = 0, time.perf_counter()
        run_start = time.perf_counter()
        collapse = torch.zeros((), device=self.device)
        skipped_log = (self.run_dir / "skipped_files.txt") if self.is_main else None

        def check_finite():
            first = int(bad_step)
            if first >= 0:
                raise NonFiniteLossError(
                    f"loss became NaN/inf at step {first}; the run stopped. The last good checkpoint is "
                    f"{self.run_dir / 'checkpoints' / 'last.pt'} (if one was written). Try a lower optimizer.lr, "
                    f"a longer warmup, or precision: fp32.")

        self.model = model
        wants_labels = getattr(self.method, "accepts_labels", False)
        extra: dict[str, torch.Tensor] = {}  # the method's scalar diagnostics, summed over the log window
        stop = _StopSignal()
        out_of_time = False
        self.model.train()
        with stop:
            while pos.step < total_steps and not out_of_time:
                sampler.set_position(pos.epoch, pos.batches_done)
                if hasattr(dataset, "set_epoch"):
                    dataset.set_epoch(pos.epoch)
                micro = 0
                for x, y, bad in loader:
                    pos.batches_done += 1
                    for item in bad:
                        if item.path not in pos.skipped:
                            pos.skipped[item.path] = item.reason
                            self._log(f"skipped {item.path}: {item.reason}")
                            if skipped_log is not None:
                                with skipped_log.open("a") as f:
                                    f.write(f"{item.path}\t{item.reason}\n")
                    if x is not None and x.shape[0] < 2:  # batch statistics need 2 samples
                        self._log(f"note: a batch of {x.shape[0]} usable item(s) after skipping bad files "
                                  f"was left out at step {pos.step}")
                        x = None
                    if x is not None:
                        gen.manual_seed(_step_seed(r.seed, pos.step, micro, self.dist.rank))
                        x = x.to(self.device, non_blocking=True)
                        with torch.no_grad():
                            views = self.views(x, gen)
                        if t.channels_last:
                            views = [v.contiguous(memory_format=torch.channels_last) if v.ndim == 4 else v
                                     for v in views]
                        sync = contextlib.nullcontext()
                        if self.dist.enabled and micro + 1 < accum:
                            sync = model.no_sync()
                        with sync:
                            with autocast:
                                out = model(views, labels=y.to(self.device)) if wants_labels else model(views)
                            loss = out["loss"] / accum
                            (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
                        loss_sum += out["loss"].detach().float() / accum
                        bad_step.copy_(torch.where((bad_step < 0) & ~torch.isfinite(out["loss"].detach()),
                                                   pos.step, bad_step))
                        collapse = out["collapse"]
                        for k, v in out.items():
                            if k not in ("loss", "collapse") and torch.is_tensor(v) and v.ndim == 0:
                                extra[k] = extra.get(k, 0.0) + v.detach().float() / accum
                        window_samples += x.shape[0] * self.dist.world_size
                        micro += 1
                    if micro == accum:
                        micro = 0
                        factor = lr_factor(pos.step)
                        for g in self.optimizer.param_groups:
                            g["lr"] = g["base_lr"] * factor
                        if self.scaler is not None:
                            self.scaler.step(self.optimizer)
                            self.scaler.update()
                        else:
                            self.optimizer.step()
                        self.optimizer.zero_grad(set_to_none=True)
                        tau = self.method.update_targets(pos.step, total_steps)
                        pos.step += 1
                        pos.window_steps += 1
                        done = pos.step >= total_steps
                        if pos.step % t.log_every == 0 or done:
                            check_finite()
                            if not done and t.max_minutes is not None:
                                done = out_of_time = self._past_deadline(run_start + 60 * t.max_minutes)
                                if done:
                                    self._log(f"trainer.max_minutes {t.max_minutes:g} reached at step {pos.step} "
                                              f"of {total_steps}: ending the run there")
                            elapsed = time.perf_counter() - window_start
                            row = {"step": pos.step, "epoch": pos.epoch, "loss": float(loss_sum) / pos.window_steps,
                                   "lr": self.optimizer.param_groups[0]["lr"], "tau": tau,
                                   "samples_per_s": window_samples / max(elapsed, 1e-9),
                                   "collapse": float(collapse), "skipped_files": len(pos.skipped),
                                   "elapsed_s": time.perf_counter() - run_start}
                            row.update({k: float(v) / pos.window_steps for k, v in extra.items()})
                            extra.clear()
                            if self.dist.enabled:
                                row["collapse"] = float(_mean_over_ranks(collapse))
                            if metrics is not None:
                                metrics.write(row)
                            if row["collapse"] < t.collapse_threshold:
                                self._log(f"WARNING: collapse monitor: projection std×√d = {row['collapse']:.4f} "
                                          f"< trainer.collapse_threshold {t.collapse_threshold} at step {pos.step}: "
                                          "the representation is collapsing")
                            if progress is not None:
                                progress.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.3g}",
                                                     tau=f"{tau:.4f}", sps=f"{row['samples_per_s']:.0f}")
                            loss_sum.zero_()
                            pos.window_steps = 0
                            window_samples, window_start = 0, time.perf_counter()
                        if progress is not None:
                            progress.update(1)
                        if pos.step % t.checkpoint_every == 0 and not done:
                            check_finite()
                            self._save(pos, f"step_{pos.step:08d}.pt")
                            self._save(pos, "last.pt")
                        if stop.received is not None and not done:
                            check_finite()
                            path = self._save(pos, "last.pt")
                            self._log(f"received signal {signal.Signals(stop.received).name}: saved {path} at step "
                                      f"{pos.step}; continue with: ssl-toolkit train RECIPE --out {self.run_dir} "
                                      "--resume auto")
                            self._finish(progress, metrics)
                            return self.run_dir
                        if done:
                            break
                    if pos.batches_done >= steps_per_epoch * accum:
                        break
                if pos.step < total_steps and not out_of_time:
                    pos.epoch += 1
                    pos.batches_done = 0
        check_finite()
        self._save(pos, "last.pt")
        if self.is_main:
            ckpt.atomic_save(self.method.encoder.state_dict(), self.run_dir / "encoder.pt")
        self._finish(progress, metrics)
        self._log(f"done: {self.run_dir / 'encoder.pt'}")
        return self.run_dir

    def _past_deadline(self, deadline: float) -> bool:
        """Whether the wall-clock budget is spent; under DDP the ranks agree (any rank past it ends all)."""
        past = torch.tensor(float(time.perf_counter() > deadline), device=self.device)
        if self.dist.enabled:
            import torch.distributed as dist

            dist.all_reduce(past, op=dist.ReduceOp.MAX)
        return bool(past)

    def _finish(self, progress, metrics) -> None:
        if progress is not None:
            progress.close()
        if metrics is not None:
            metrics.close()
        shutdown(self.dist)


def _mean_over_ranks(x: torch.Tensor) -> torch.Tensor:
    import torch.distributed as dist

    x = x.detach().clone().float()
    dist.all_reduce(x)
    return x / dist.get_world_size()
