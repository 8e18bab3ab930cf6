"""The trainer: builds a run from a recipe (data, views, method, optimizer, schedule, precision, DDP),
resumes it, runs the loop (loop.py) with its hooks (hooks.py) around the step (step.py), and writes the run
directory: recipe.yaml, metrics.csv, checkpoints (the format is owned by ssl_toolkit/checkpoint.py),
encoder.pt with its weights card.

Randomness is reproducible by construction: the view augmentations draw from a device
generator reseeded from (seed, step, micro-step, rank) at every step; model randomness (dropout)
uses the global RNG, whose states are saved in checkpoints; the data order is a function of
(seed, epoch) and the position inside the epoch is checkpointed.
"""

from __future__ import annotations

import contextlib
import random
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn

from .. import checkpoint as ckpt
from ..data import preparation_batches
from ..engine.build import feature_dim_of
from ..recipe import Recipe, to_plain
from ..run_dir import (
    RunDirLock,
    check_new_run,
    check_output_location,
    describe_changes,
    existing_run_files,
    recipe_changes,
)
from ..weights_card import card_from_recipe
from .builders import build_learner, build_loader
from .distributed import barrier, broadcast_object, init_distributed, shutdown
from .hooks import Hooks, NonFiniteLossError, builtin_hooks, recipe_hooks  # noqa: F401 - NonFiniteLossError re-exported
from .init_weights import InitError, initialize_encoder
from .loop import Position, Run, TrainingError, run_loop
from .step import Learner


def default_run_dir(recipe: Recipe) -> Path:
    if recipe.out_dir:
        return Path(recipe.out_dir).expanduser()
    return Path("runs") / f"{recipe.name}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


class Trainer:
    """Runs one recipe into one run directory (docs/CONTRACTS.md, "Files a run writes", lists its contents)."""

    def __init__(
        self,
        recipe: Recipe,
        out_dir: str | Path | None = None,
        resume: str | None = None,
        quiet: bool = False,
        overwrite: bool = False,
        allow_recipe_change: bool = False,
    ):
        self.recipe, self.resume, self.quiet = recipe, resume, quiet
        self.overwrite, self.allow_recipe_change = overwrite, allow_recipe_change
        try:
            self.dist, self.device = init_distributed(recipe.device)
        except ValueError as e:  # an unknown device name
            raise TrainingError(str(e)) from None
        if resume is None and self.dist.restarted:
            self.resume = resume = "auto"  # torchrun restarted the workers: continue where the job was
        if resume == "auto" and out_dir is None and recipe.out_dir is None:
            raise TrainingError("--resume auto needs the run directory: pass --out DIR (or set out_dir)")
        run_dir = Path(out_dir) if out_dir is not None else default_run_dir(recipe)
        self.run_dir = Path(broadcast_object(str(run_dir), self.dist))
        self.is_main = self.dist.is_main

    def _log(self, msg: str) -> None:
        if self.is_main and not self.quiet:
            print(msg, file=sys.stderr, flush=True)

    def _find_resume_checkpoint(self) -> ckpt.TrainingState | None:
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
                state = ckpt.TrainingState.load(path, map_location=self.device)
                if state.rng is None:
                    raise ckpt.CheckpointError(
                        f"{path}: no RNG state, so it cannot resume exactly (model.init_from "
                        "starts a run from its weights)"
                    )
            except ckpt.CheckpointError as e:
                errors.append(str(e))
                self._log(f"warning: {e}; trying an older checkpoint")
                continue
            self._log(f"resuming from {path} (step {state.step})")
            return state
        raise TrainingError("no usable checkpoint to resume from:\n  " + "\n  ".join(errors))

    def _card(self, recipe_tree: dict, views_state: dict) -> dict:
        return card_from_recipe(recipe_tree, views_state, feature_dim_of(self.method.encoder)).to_dict()

    def _save(self, pos: Position, name: str) -> Path | None:
        """checkpoints/<name>: the hooks see (and may refuse) it on every rank; rank 0 writes it."""
        recipe_tree, views_state = self.recipe.to_dict(), self.views.state_dict()
        state = ckpt.TrainingState(
            recipe=recipe_tree,
            step=pos.step,
            epoch=pos.epoch,
            batches_done=pos.batches_done,
            method=self.method.state_dict(),
            views=views_state,
            optimizer=self.optimizer.state_dict(),
            scaler=self.scaler.state_dict() if self.scaler is not None else {},
            rng=ckpt.rng_state(),
            skipped=[[p, r] for p, r in pos.skipped.items()],
            card=self._card(recipe_tree, views_state),
            data_items=self.data_items,
            hooks=self.hooks.states(),
        )
        self.hooks.on_checkpoint(self.run, state)
        if not self.is_main:
            return None
        path = state.save(self.run_dir / "checkpoints" / name)
        if name != "last.pt":
            ckpt.prune_periodic(self.run_dir, self.recipe.trainer.keep_checkpoints)
        return path

    def _wrap(self, learner: Learner) -> None:
        """DDP and torch.compile around the method (after its state is loaded)."""
        if self.dist.enabled:
            learner.model = nn.parallel.DistributedDataParallel(
                learner.model,
                device_ids=[self.device.index] if self.device.type == "cuda" else None,
                forward_sync_buffers=False,
            )
        if self.recipe.trainer.compile:
            learner.model = torch.compile(learner.model)

    def fit(self) -> Path:
        """Train; the run directory is locked for the whole run (rank 0)."""
        if self.is_main:
            check_output_location(self.run_dir)
        with RunDirLock(self.run_dir) if self.is_main else contextlib.nullcontext():
            return self._fit()

    def _check_resume(self, state: ckpt.TrainingState | None) -> None:
        """A fresh run never lands on an old one; a resume changes only safe keys unless allowed."""
        if state is None:
            if self.resume is None:
                existing = existing_run_files(self.run_dir)
                barrier(self.dist)  # every rank has looked (and decides alike) before rank 0 may delete
                check_new_run(self.run_dir, existing, self.overwrite, delete=self.is_main)
            return
        changes = recipe_changes(state.recipe, self.recipe.to_dict())
        if changes and not self.allow_recipe_change:
            raise TrainingError(
                f"--resume: the recipe differs from the one checkpoint step {state.step} was trained "
                f"with:\n{describe_changes(changes)}\nresume with the checkpoint's recipe "
                f"({self.run_dir / 'recipe.yaml'}), or pass --allow-recipe-change to continue "
                "with these values"
            )
        if changes:
            self._log(f"--allow-recipe-change: continuing step {state.step} with\n{describe_changes(changes)}")

    def _load_states(self, state: ckpt.TrainingState) -> None:
        """The checkpoint's weights, view states, optimizer moments and scaler into the recipe's objects (the
        recipe's hyperparameters stay); a model that does not fit names the recipe keys that changed."""
        recipe_values = [{k: v for k, v in g.items() if k != "params"} for g in self.optimizer.param_groups]
        try:
            self.method.load_state_dict(state.method)
            self.views.load_state_dict(state.views)
            for i, (now, saved) in enumerate(zip(self.optimizer.param_groups, state.optimizer.get("param_groups", []))):
                if saved.get("param_names", now["param_names"]) != now["param_names"]:  # older checkpoints: none
                    raise ValueError(f"optimizer group {i} holds other parameters than the checkpoint's")
            self.optimizer.load_state_dict(state.optimizer)
        except (RuntimeError, ValueError, KeyError) as e:
            changed = [
                k
                for k, _, _ in recipe_changes(state.recipe, self.recipe.to_dict())
                if k.startswith(
                    (
                        "model.",
                        "method",
                        "views.",
                        "optimizer.name",
                        "optimizer.constant_lr",  # these two change the optimizer's parameter groups
                        "optimizer.exclude_bias_and_norm",
                        "data.dataset",
                    )
                )
            ]
            detail = ckpt.state_dict_mismatch(self.method.state_dict(), state.method) or str(e).splitlines()[0]
            raise TrainingError(
                f"--resume: checkpoint step {state.step} does not fit what this recipe builds ({detail}); recipe "
                f"keys changed since: {', '.join(changed) or 'none (a changed component default?)'}. A changed "
                "architecture cannot be resumed: resume with the checkpoint's recipe or start a new run "
                "(another --out, or --overwrite)"
            ) from None
        for group, values in zip(self.optimizer.param_groups, recipe_values):
            group.update(values)  # the recipe's hyperparameters (lr, weight decay...), the checkpoint's moments
        if self.scaler is not None and state.scaler:
            self.scaler.load_state_dict(state.scaler)

    def _initial_weights(self, state: ckpt.TrainingState | None) -> None:
        """``model.init_from`` on a fresh run (the resolved path and sha256 go into the recipe); a resume keeps the
        checkpoint's weights and its recipe's init keys."""
        m = self.recipe.model
        if state is not None:
            old = state.recipe.get("model") or {}
            m.init_from, m.init_strict, m.init_sha256 = (
                old.get("init_from"),
                old.get("init_strict", True),
                old.get("init_sha256"),
            )
            return
        if m.init_from is None:
            return
        try:
            path, digest = initialize_encoder(self.method, str(m.init_from), m.init_strict, m.init_sha256, self._log)
        except InitError as e:
            raise TrainingError(str(e)) from None
        m.init_from, m.init_sha256 = str(path), digest

    def _worker_death(self, error: RuntimeError) -> str:
        """One line for a data worker that died (torch raises it in the main thread, at any point of the step, so
        the in-memory state is not saved): the likely cause, the newest valid checkpoint and the resume command."""
        newest = None
        for path in ckpt.checkpoint_candidates(self.run_dir):
            try:
                newest = (path, ckpt.TrainingState.load(path).step)
                break
            except ckpt.CheckpointError:
                continue
        kept = (
            f"the newest valid checkpoint is {newest[0]} (step {newest[1]})"
            if newest
            else "no checkpoint was written yet, so a resume starts at step 0"
        )
        return (
            f"a data loader worker died ({str(error).strip().splitlines()[0]}): usually the kernel's out-of-memory "
            f"killer — lower data.num_workers or data.batch_size, or free memory; {kept}; continue with: "
            f"ssl-toolkit train {self.run_dir / 'recipe.yaml'} --out {self.run_dir} --resume auto"
        )

    def _write_recipe(self, step: int | None) -> None:
        """recipe.yaml; on a resume whose recipe differs, the previous one is kept as recipe.until-step-N.yaml."""
        text = yaml.safe_dump(to_plain(self.recipe.to_dict()), sort_keys=False)
        path = self.run_dir / "recipe.yaml"
        if step is not None and path.is_file() and path.read_text() != text:
            path.replace(self.run_dir / f"recipe.until-step-{step}.yaml")
        path.write_text(text)

    def _fit(self) -> Path:
        r, t = self.recipe, self.recipe.trainer
        torch.manual_seed(r.seed)
        np.random.seed(r.seed % 2**32)
        random.seed(r.seed)
        dataset, sampler, loader = build_loader(r, self.device, self.dist.rank, self.dist.world_size)
        self.data_items = None if isinstance(dataset, torch.utils.data.IterableDataset) else len(dataset)
        accum = t.grad_accum_steps
        steps_per_epoch = sampler.batches_per_epoch() // accum
        if steps_per_epoch == 0:
            raise TrainingError(
                f"trainer.grad_accum_steps={accum} exceeds the {sampler.batches_per_epoch()} batches of one epoch"
            )
        total_steps = t.max_steps if t.max_steps is not None else t.epochs * steps_per_epoch
        global_batch = r.data.batch_size * self.dist.world_size * accum
        learner, lr_rule = build_learner(
            r, self.device, global_batch, total_steps, steps_per_epoch, self.dist.rank, self.dist.enabled
        )
        self.views, self.method, self.optimizer, self.scaler = (
            learner.views,
            learner.method,
            learner.optimizer,
            learner.scaler,
        )

        state = self._find_resume_checkpoint()
        self._check_resume(state)
        self._initial_weights(state)
        pos = Position()
        try:
            self.views.prepare(
                preparation_batches(dataset, r.data.batch_size, r.data.num_workers, r.seed, self.device),
                self.device,
                self.run_dir if self.is_main else None,
                dataset,
            )
        except ValueError as e:  # e.g. statistics over a dataset with no usable item
            raise TrainingError(f"views: preparing the ops with the training data failed: {e}") from None
        if state is not None:
            self._load_states(state)
            pos = Position(state.step, state.epoch, state.batches_done, dict(map(tuple, state.skipped)))
            if state.rng is not None:  # always: _find_resume_checkpoint refuses a checkpoint without one
                ckpt.set_rng_state(state.rng)
        self._wrap(learner)
        self.model = learner.model

        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            self._write_recipe(state.step if state else None)
        barrier(self.dist)
        self.run = Run(
            recipe=r,
            run_dir=self.run_dir,
            learner=learner,
            pos=pos,
            total_steps=total_steps,
            steps_per_epoch=steps_per_epoch,
            global_batch=global_batch,
            is_main=self.is_main,
            world_size=self.dist.world_size,
            resumed_step=state.step if state else None,
            log=self._log,
            save=lambda name: self._save(self.run.pos, name),
            dataset=dataset,
        )
        self.hooks = Hooks(
            builtin_hooks(t, progress=self.is_main and t.progress and not self.quiet) + recipe_hooks(t.hooks)
        )
        if state is not None:
            self.hooks.on_resume(self.run, state)
            self.hooks.load_states(state.hooks)
        self._log(
            f"run dir: {self.run_dir}\n{lr_rule}\n{total_steps} steps "
            f"({steps_per_epoch}/epoch, global batch {global_batch}, {self.dist.world_size} process(es), "
            f"{self.device}, {r.precision})"
        )
        self.hooks.on_start(self.run)
        learner.model.train()
        try:
            run_loop(
                self.run,
                self.hooks,
                loader,
                sampler,
                dataset,
                accum,
                wants_labels=getattr(self.method, "accepts_labels", False),
            )
            if self.run.stop == "signal":
                import signal

                path = self._save(self.run.pos, "last.pt")
                signum = self.run.interrupt
                self._log(
                    f"received signal {signal.Signals(signum).name if signum else '(in another process)'}: saved "
                    f"{path} at step "
                    f"{self.run.pos.step}; continue with: ssl-toolkit train RECIPE --out {self.run_dir} "
                    "--resume auto"
                )
                return self.run_dir
            self._save(self.run.pos, "last.pt")
            if self.is_main:
                card = self._card(self.recipe.to_dict(), self.views.state_dict())
                ckpt.save_encoder(self.run_dir / "encoder.pt", self.method.encoder.state_dict(), card)
                ckpt.save_encoder_safetensors(
                    self.run_dir / "encoder.safetensors", self.method.encoder.state_dict(), card
                )
        except RuntimeError as e:
            if "DataLoader worker (pid" not in str(e):
                raise
            raise TrainingError(self._worker_death(e)) from None
        finally:
            self.hooks.on_end(self.run)
            shutdown(self.dist)
        self._log(f"done: {self.run_dir / 'encoder.pt'}")
        return self.run_dir
