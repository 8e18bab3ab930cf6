"""Hooks: small objects the training loop calls at documented points.

A hook subclasses :class:`Hook` and overrides the points it needs; hooks run in ``order`` (lower first):

- ``on_resume(run, state)``: a checkpoint (TrainingState) is being resumed, before ``on_start``;
- ``on_start(run)``: before the first step (also of a resumed run);
- ``on_step(run, out)``: after every optimizer step (``out``: :class:`~ssl_toolkit.training.step.StepOutput`);
- ``on_log(run, row)``: at log steps and the last step; add columns to ``row`` (order < 90), the metrics
  file writes it at order 90;
- ``on_step_end(run)``: after ``on_log``; checkpoints are written here;
- ``on_epoch_end(run)``: after each epoch that the run continues past;
- ``on_checkpoint(run, state)``: before every checkpoint is written, on every rank; may raise to refuse it;
- ``on_end(run)``: always, last, also after an error.

``state_dict()``/``load_state_dict()`` travel in checkpoints (``TrainingState.hooks``), so a hook with
state resumes exactly. Register a hook with ``@HOOKS.register("name")`` in a module listed under
``imports:``; ``trainer.hooks: [{name: ..., param: value}]`` turns it on. Hooks run on every rank under
DDP: write files on ``run.is_main`` only, and take part in any collective on every rank.
"""

from __future__ import annotations

import signal
import time
from typing import Callable

import torch

from ..registry import HOOKS
from .loop import TrainingError, mean_over_ranks


class NonFiniteLossError(TrainingError):
    pass


class Hook:
    order = 50

    @property
    def state_key(self) -> str:
        """Where this hook's state is kept in checkpoints (hooks of one class that can appear twice in a recipe
        override it with a key of their own)."""
        return type(self).__name__

    def on_resume(self, run, state) -> None: ...
    def on_start(self, run) -> None: ...
    def on_step(self, run, out) -> None: ...
    def on_log(self, run, row: dict) -> None: ...
    def on_step_end(self, run) -> None: ...
    def on_epoch_end(self, run) -> None: ...
    def on_checkpoint(self, run, state) -> None: ...
    def on_end(self, run) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


class Hooks:
    """The hooks of a run, called in order; a hook's checkpoint state is kept under its ``state_key``."""

    POINTS = ("on_resume", "on_start", "on_step", "on_log", "on_step_end", "on_epoch_end", "on_checkpoint", "on_end")
    # one caller per point, set in __init__: each calls that point of every hook that overrides it, in order
    on_resume: Callable[..., None]
    on_start: Callable[..., None]
    on_step: Callable[..., None]
    on_log: Callable[..., None]
    on_step_end: Callable[..., None]
    on_epoch_end: Callable[..., None]
    on_checkpoint: Callable[..., None]
    on_end: Callable[..., None]

    def __init__(self, hooks: list[Hook]):
        self.hooks = sorted(hooks, key=lambda h: h.order)
        for point in self.POINTS:
            setattr(self, point, self._caller(point))

    def _caller(self, point: str):
        bound = [getattr(h, point) for h in self.hooks if getattr(type(h), point) is not getattr(Hook, point)]

        def call(*args):
            for fn in bound:
                fn(*args)

        return call

    def states(self) -> dict:
        return {h.state_key: s for h in self.hooks if (s := h.state_dict())}

    def load_states(self, states: dict) -> None:
        for h in self.hooks:
            if h.state_key in states:
                h.load_state_dict(states[h.state_key])


class Monitor(Hook):
    """A quality signal of the online encoder (RankMe, a probe): measured at random init before step 0 (kept in
    checkpoints, so a resumed run shows the same scale), whenever :meth:`due`, and at the last step. The first row
    of a fresh run carries its columns (empty unless measured) with the ``<column>_init`` values; rank 0 computes.
    Subclasses set ``init`` (column → value) and ``label``, and define ``measure``, ``due`` and ``advance``."""

    label = "monitor"

    def __init__(self):
        self.init: dict = {}
        self.seconds = 0.0  # spent measuring, logged at the end (read by benchmarks/speed/bench_monitor_cost.py)
        self.first_row = True

    def measure(self, run) -> dict:
        """Column → value of the online encoder now."""
        raise NotImplementedError

    def due(self, run) -> bool:
        """Whether this log step is a scheduled measurement."""
        raise NotImplementedError

    def advance(self, run) -> None:
        """Moves the schedule past the measurement just made."""
        raise NotImplementedError

    def timed_measure(self, run) -> dict:
        t0 = time.perf_counter()
        out = self.measure(run)
        self.seconds += time.perf_counter() - t0
        return out

    def on_start(self, run):
        self.first_row = run.resumed_step is None  # a resumed run continues the checkpoint's schedule

    def on_log(self, run, row):
        if not run.is_main:
            return
        if self.due(run) or run.done:
            row.update(self.timed_measure(run))
            self.advance(run)
        elif self.first_row:  # the first row fixes metrics.csv's columns; the init values stand for step 0
            row.update({k: "" for k in self.init})
        else:
            return
        row.update({f"{k}_init": v for k, v in self.init.items()})
        self.first_row = False

    def on_end(self, run):
        if run.is_main and self.seconds:
            run.log(f"{self.label}: {self.seconds:.1f} s spent measuring")


class NanGuard(Hook):
    """Stops the run at the first NaN/inf loss; tracked on the device (no per-step sync), checked at log
    steps and before every checkpoint, so no checkpoint ever holds a diverged model."""

    order = 0

    def on_start(self, run):
        self.bad_step = torch.full((), -1, dtype=torch.long, device=run.learner.device)

    def on_step(self, run, out):
        step = run.pos.step - 1
        self.bad_step.copy_(torch.where((self.bad_step < 0) & ~torch.isfinite(out.loss), step, self.bad_step))

    def check(self, run, *_):
        first = int(self.bad_step)
        if first >= 0:
            raise NonFiniteLossError(
                f"loss became NaN/inf at step {first}; the run stopped. The last good checkpoint is "
                f"{run.run_dir / 'checkpoints' / 'last.pt'} (if one was written). Try a lower optimizer.lr, "
                f"a longer warmup, or precision: fp32."
            )

    on_log = on_checkpoint = check


class Deadline(Hook):
    """``trainer.max_minutes``: at the first log step past the budget the run ends as a finished run;
    under DDP the ranks agree (any rank past it ends all). The budget is training time over every session:
    a resumed run gets what its checkpoint had left."""

    order = 10

    def __init__(self, minutes: float):
        self.minutes, self.carried = minutes, 0.0

    def on_resume(self, run, state):
        self.carried = float(state.elapsed_s)

    def on_start(self, run):
        self.deadline = time.perf_counter() + 60 * self.minutes - self.carried

    def on_log(self, run, row):
        if run.done:
            return
        past = torch.tensor(float(time.perf_counter() > self.deadline), device=run.learner.device)
        if run.world_size > 1:
            import torch.distributed as dist

            dist.all_reduce(past, op=dist.ReduceOp.MAX)
        if bool(past):
            run.stop = "deadline"
            run.log(
                f"trainer.max_minutes {self.minutes:g} reached at step {run.pos.step} of {run.total_steps}: "
                "ending the run there"
            )


class WindowMetrics(Hook):
    """The metrics row: means over the log window of loss and the method's diagnostics, lr, τ, samples/s,
    the collapse metric (mean over ranks), skipped files, elapsed time (training seconds over every session:
    a resumed run continues its checkpoint's count)."""

    order = 20

    def __init__(self):
        self.loss_sum, self.steps, self.carried = 0.0, 0, 0.0

    def on_resume(self, run, state):
        self.loss_sum, self.steps = state.window
        self.carried = float(state.elapsed_s)

    def on_start(self, run):
        # float32 on the device, continued from the checkpoint, so a resumed run logs the same bits
        self.loss_sum = torch.full((), float(self.loss_sum), device=run.learner.device)
        self.extra: dict = {}
        self.samples, self.run_start = 0, time.perf_counter()
        self.window_start = self.run_start

    def on_step(self, run, out):
        self.loss_sum += out.loss
        self.steps += 1
        self.samples += out.samples * run.world_size
        for k, v in out.diagnostics.items():
            self.extra[k] = self.extra.get(k, 0.0) + v
        self.last = out

    def on_log(self, run, row):
        now = time.perf_counter()
        collapse = mean_over_ranks(self.last.collapse) if run.world_size > 1 else self.last.collapse
        row.update(
            {
                "step": run.pos.step,
                "epoch": run.pos.epoch,
                "loss": float(self.loss_sum) / self.steps,
                "lr": self.last.lr,
                "tau": self.last.tau,
                "samples_per_s": self.samples / max(now - self.window_start, 1e-9),
                "collapse": float(collapse),
                "skipped_files": len(run.pos.skipped),
                "elapsed_s": self.carried + now - self.run_start,
            }
        )
        row.update({k: float(v) / self.steps for k, v in self.extra.items()})
        self.extra.clear()
        self.loss_sum.zero_()
        self.steps, self.samples, self.window_start = 0, 0, time.perf_counter()

    def on_checkpoint(self, run, state):
        state.window = [float(self.loss_sum), self.steps]
        state.elapsed_s = self.carried + time.perf_counter() - self.run_start


class MetricsFile(Hook):
    """metrics.csv and TensorBoard (rank 0)."""

    order = 90

    def __init__(self, tensorboard: bool):
        self.tensorboard, self.writer = tensorboard, None

    def on_start(self, run):
        from .metrics import MetricsWriter

        if run.is_main:
            self.writer = MetricsWriter(run.run_dir, run.resumed_step, self.tensorboard)

    def on_log(self, run, row):
        if self.writer is not None:
            self.writer.write(row)

    def on_end(self, run):
        if self.writer is not None:
            self.writer.close()


class CollapseWarning(Hook):
    """A warning when the collapse metric (projection std × √d) falls below ``trainer.collapse_threshold``."""

    order = 91

    def __init__(self, threshold: float):
        self.threshold = threshold

    def on_log(self, run, row):
        if row["collapse"] < self.threshold:
            run.log(
                f"WARNING: collapse monitor: projection std×√d = {row['collapse']:.4f} < "
                f"trainer.collapse_threshold {self.threshold} at step {run.pos.step}: the representation is "
                "collapsing"
            )


class Progress(Hook):
    """A tqdm bar over the run's steps (rank 0) with the last logged loss, lr, τ and samples/s."""

    order = 92

    def on_start(self, run):
        from tqdm.auto import tqdm

        self.bar = (
            tqdm(total=run.total_steps, initial=run.pos.step, desc=run.recipe.name, unit="step", dynamic_ncols=True)
            if run.is_main
            else None
        )

    def on_step(self, run, out):
        if self.bar is not None:
            self.bar.update(1)

    def on_log(self, run, row):
        if self.bar is not None:
            self.bar.set_postfix(
                loss=f"{row['loss']:.4f}",
                lr=f"{row['lr']:.3g}",
                tau=f"{row['tau']:.4f}",
                sps=f"{row['samples_per_s']:.0f}",
            )

    def on_end(self, run):
        if self.bar is not None:
            self.bar.close()


class PeriodicCheckpoint(Hook):
    """checkpoints/step_N.pt (the newest ``trainer.keep_checkpoints`` kept) and last.pt every
    ``trainer.checkpoint_every`` steps."""

    def __init__(self, every: int):
        self.every = every

    def on_step_end(self, run):
        if run.pos.step % self.every == 0 and not run.done:
            run.save(f"step_{run.pos.step:08d}.pt")
            run.save("last.pt")


class StopSignals(Hook):
    """SIGTERM / SIGUSR1 (preemption) and SIGINT (Ctrl-C) ask the loop to stop at the next safe point; the
    trainer then writes last.pt and prints the resume command. A second Ctrl-C stops at once."""

    SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)

    def on_start(self, run):
        self.previous = {}

        def handle(signum, frame):
            if signum == signal.SIGINT and run.interrupt is not None:
                raise KeyboardInterrupt  # the second Ctrl-C: stop now
            run.interrupt = signum
            if signum == signal.SIGINT:
                run.log("Ctrl-C: saving a checkpoint at the end of this step (press Ctrl-C again to stop at once)")

        for sig in self.SIGNALS:
            try:
                self.previous[sig] = signal.signal(sig, handle)
            except ValueError:  # not the main thread: leave the default handlers
                pass

    def on_end(self, run):
        for sig, handler in getattr(self, "previous", {}).items():
            signal.signal(sig, handler)


def builtin_hooks(trainer_cfg, progress: bool) -> list[Hook]:
    """The hooks every run has, configured by the ``trainer`` keys."""
    t = trainer_cfg
    hooks = [
        NanGuard(),
        WindowMetrics(),
        MetricsFile(t.tensorboard),
        CollapseWarning(t.collapse_threshold),
        PeriodicCheckpoint(t.checkpoint_every),
        StopSignals(),
    ]
    if t.max_minutes is not None:
        hooks.append(Deadline(t.max_minutes))
    if progress:
        hooks.append(Progress())
    return hooks


def recipe_hooks(specs) -> list[Hook]:
    """The hooks ``trainer.hooks`` turns on (components of the HOOKS registry)."""
    hooks = []
    for spec in specs or []:
        hook = HOOKS.build(spec.name, **spec.params)
        if not isinstance(hook, Hook):
            raise TrainingError(f"trainer.hooks: '{spec.name}' built a {type(hook).__name__}, not a Hook")
        hooks.append(hook)
    return hooks
