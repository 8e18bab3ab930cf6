"""The loop: epochs, the sampler position, micro-batches, and the hook points around the step.

After every optimizer step the loop calls, in hook order: ``on_step`` → ``on_log`` (log steps and the last
step) → ``on_step_end``; ``on_epoch_end`` after each finished epoch (not after the last step). Signals are
honoured between any two batches that leave no micro-batch pending, so a stop is always at a point that
resumes exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from .distributed import every_rank
from .step import Learner, train_step


class TrainingError(RuntimeError):
    """A run that cannot start or continue, with what to do about it."""


@dataclass
class Position:
    """Where the run is: optimizer steps done, the epoch, batches read in it, bad files skipped so far."""

    step: int = 0
    epoch: int = 0
    batches_done: int = 0
    skipped: dict = field(default_factory=dict)


@dataclass
class Run:
    """What the loop and its hooks share."""

    recipe: Any
    run_dir: Path
    learner: Learner
    pos: Position
    total_steps: int
    steps_per_epoch: int
    global_batch: int
    is_main: bool
    world_size: int
    resumed_step: Optional[int]
    """The step a resumed run continues from (None for a fresh run)."""
    log: Callable[[str], None]
    save: Callable[[str], Optional[Path]]
    """Writes checkpoints/<name> (rank 0; every rank calls it)."""
    dataset: Any = None
    """The training dataset (read-only for hooks: e.g. a monitor's fixed pool of items)."""
    stop: Optional[str] = None
    """Why the run ends early: 'deadline' (ends as a finished run) or 'signal' (checkpoint, no encoder.pt)."""
    interrupt: Optional[int] = None
    """A signal number received (set by the signal hook); the loop stops at the next safe point."""

    @property
    def done(self) -> bool:
        """The last step of a finished run was taken."""
        return self.pos.step >= self.total_steps or self.stop == "deadline"


MAX_LOGGED = 10
"""Lines of one kind (skipped file, left-out batch) logged per run before the rest are only counted: a folder
of a million bad files must not write a million log lines (skipped_files.txt still lists every file)."""


def _record_bad(run: Run, bad: list, skipped_log: Optional[Path]) -> None:
    for item in bad:
        if item.path not in run.pos.skipped:
            run.pos.skipped[item.path] = item.reason
            n = len(run.pos.skipped)
            if n <= MAX_LOGGED:
                run.log(f"skipped {item.path}: {item.reason}")
            if n == MAX_LOGGED:
                run.log(f"note: further skipped files are listed in {skipped_log or 'skipped_files.txt'} only")
            if skipped_log is not None:
                with skipped_log.open("a") as f:
                    f.write(f"{item.path}\t{item.reason}\n")


def _note_left_out(run: Run, n_items: int, left_out: int) -> None:
    if left_out <= MAX_LOGGED:
        run.log(
            f"note: a batch of {n_items} usable item(s) was left out at step {run.pos.step} (batch statistics "
            f"need 2{' in every process' if run.world_size > 1 else ''})"
            + ("; further ones are counted at the end of the epoch" if left_out == MAX_LOGGED else "")
        )


def run_loop(run: Run, hooks, loader, sampler, dataset, accum: int, wants_labels: bool) -> None:
    """Train until ``run.total_steps`` or ``run.stop``; raises TrainingError for an epoch that can make no step."""
    t = run.recipe.trainer
    skipped_log = run.run_dir / "skipped_files.txt" if run.is_main else None
    while run.pos.step < run.total_steps and run.stop is None:
        sampler.set_position(run.pos.epoch, run.pos.batches_done)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(run.pos.epoch)
        fresh_epoch, steps_before = run.pos.batches_done == 0, run.pos.step
        pending: list = []
        left_out = 0
        for x, y, bad in loader:
            run.pos.batches_done += 1
            _record_bad(run, bad, skipped_log)
            usable = x is not None and x.shape[0] >= 2  # batch statistics need 2 samples
            calm = run.interrupt is None
            if run.world_size > 1:  # under DDP every rank steps or none does, and all stop at the same batch
                usable, calm = every_rank(usable, calm)
            if x is not None and not usable:
                left_out += 1
                _note_left_out(run, x.shape[0], left_out)
                x = None
            if x is not None:
                pending.append((x, y if wants_labels else None))
            if len(pending) == accum:
                out = train_step(run.learner, pending, run.pos.step)
                pending = []
                run.pos.step += 1
                hooks.on_step(run, out)
                if run.pos.step % t.log_every == 0 or run.done:
                    hooks.on_log(run, {})
                hooks.on_step_end(run)
            if run.done:
                break
            if not pending and not (calm if run.world_size > 1 else run.interrupt is None):
                run.stop = "signal"
                break
            if run.pos.batches_done >= run.steps_per_epoch * accum:
                break
        if left_out > MAX_LOGGED:
            run.log(f"note: epoch {run.pos.epoch}: {left_out} batches with fewer than 2 usable items were left out")
        if fresh_epoch and run.pos.step == steps_before and run.stop is None:
            raise TrainingError(
                f"epoch {run.pos.epoch} made no optimizer step: {run.pos.batches_done} batches read, "
                f"{len(run.pos.skipped)} bad file(s) skipped so far, and every batch had fewer than 2 usable items "
                f"(data.batch_size={run.recipe.data.batch_size}); batch statistics need at least 2 items per batch: "
                "raise data.batch_size or fix the bad files listed above"
            )
        if run.pos.step < run.total_steps and run.stop is None:
            hooks.on_epoch_end(run)
            run.pos.epoch += 1
            run.pos.batches_done = 0


def mean_over_ranks(x: torch.Tensor) -> torch.Tensor:
    import torch.distributed as dist

    x = x.detach().clone().float()
    dist.all_reduce(x)
    return x / dist.get_world_size()
