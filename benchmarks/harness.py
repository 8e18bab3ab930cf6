"""What the benchmark scripts share: timing, the BYOL training step, the machine record, JSON + markdown.

Scripts run as ``python benchmarks/<folder>/<name>.py``, put ``benchmarks/`` on sys.path and import this module as
``harness``; importing it also puts the repository root and every benchmark folder on sys.path (scripts import each
other by module name: ``from bench_peers import ...``).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("speed", "quality", "claims", "diagnoses", "monitors")
"""The benchmark folders, by purpose (benchmarks/README.md)."""
sys.path[:0] = [str(ROOT), *(str(ROOT / "benchmarks" / f) for f in FOLDERS)]

import torch  # noqa: E402


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_per_call(fn: Callable[[], object], steps: int, warmup: int, device: torch.device) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) per call after ``warmup`` calls. The CPU time is the steadier
    number on a shared machine: other processes slow the wall clock but not (much) this process's work."""
    for _ in range(warmup):
        fn()
    sync(device)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        fn()
    sync(device)
    return (time.perf_counter() - start) / steps, (time.process_time() - cpu) / steps


def autocast(device: torch.device, precision: str):
    """bf16 autocast on ``device`` for ``precision == "bf16"``, else nothing."""
    return torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()


def trainer_batches(recipe, device: torch.device):
    """Endless uint8/float batches from the trainer's own loader (``build_loader``), epoch after epoch."""
    from ssl_toolkit.training.builders import build_loader

    dataset, sampler, loader = build_loader(recipe, device)
    for epoch in itertools.count():
        sampler.set_position(epoch, 0)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        for x, _, _ in loader:
            yield x


def byol_training_step(recipe, device: torch.device, precision: str, global_batch: int):
    """The trainer's own step (``ssl_toolkit.training.step.train_step`` on the learner the trainer builds, with
    ``precision`` instead of the recipe's), without the loop's bookkeeping. Its phases are
    ``record_function`` ranges (views, forward, backward, optimizer, ema) for torch.profiler. Returns
    ``(step, method)``; ``step(x, around_model)`` runs ``around_model`` (a context manager, e.g. a FLOP
    counter) around the step."""
    import dataclasses

    from ssl_toolkit.training.builders import build_learner
    from ssl_toolkit.training.step import train_step

    recipe = dataclasses.replace(recipe, precision=precision)
    learner, _ = build_learner(recipe, device, global_batch, total_steps=10_000, steps_per_epoch=1_000)
    learner.method.train()
    counter = [0]

    def step(x: torch.Tensor, around_model=None) -> None:
        with around_model if around_model is not None else contextlib.nullcontext():
            train_step(learner, [(x, None)], counter[0])
        counter[0] += 1

    return step, learner.method


def environment(device: torch.device) -> dict:
    env = {
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpu": platform.processor() or platform.machine(),
        "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()],
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    return env


def write_results(out_dir: str | Path, name: str, payload: dict, markdown_lines: list[str]) -> Path:
    """``out_dir/name.json`` (payload) and ``out_dir/name.md``; returns the markdown path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(payload, indent=2))
    (out / f"{name}.md").write_text("\n".join(markdown_lines) + "\n")
    return out / f"{name}.md"


RESULT_SHAPING = ("trainer.epochs", "trainer.max_steps", "trainer.max_minutes")
"""Keys a resume may change (run_dir.SAFE_ON_RESUME) that still decide which encoder a finished run holds (no
benchmark starts from other weights: ``model.init_*``, which the trainer rewrites to resolved paths, stay out)."""


def finished_with(recipe, run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a finished run (``encoder.pt``) of ``recipe``, up to progress, logging, device and
    other keys that do not change the encoder; a finished run of another recipe is an error naming the keys, so a
    changed benchmark setting (or a changed recipe file) never reuses a stale encoder or its results."""
    import yaml

    from ssl_toolkit.recipe.schema import to_plain
    from ssl_toolkit.run_dir import SAFE_ON_RESUME, describe_changes, recipe_changes

    if not (run_dir / "encoder.pt").exists():
        return False
    saved = yaml.safe_load((run_dir / "recipe.yaml").read_text())
    now = yaml.safe_load(yaml.safe_dump(to_plain(recipe.to_dict()), sort_keys=False))
    safe = (*(k for k in SAFE_ON_RESUME if k not in RESULT_SHAPING), "name")
    if changes := recipe_changes(saved, now, safe):
        raise SystemExit(
            f"{run_dir} holds an encoder trained with another recipe:\n"
            f"{describe_changes(changes).replace('(checkpoint)', '(that run)')}\n"
            "move that folder away (or choose another --out) to train this one"
        )
    return True


def train_or_reuse(recipe, run_dir: Path) -> None:
    """Train ``recipe`` into ``run_dir``, resuming an unfinished run from its last checkpoint; a finished run is
    reused only when it is this recipe's (:func:`finished_with`)."""
    from ssl_toolkit.training.trainer import Trainer

    if finished_with(recipe, run_dir):
        return
    Trainer(recipe, out_dir=run_dir, resume="auto", quiet=True).fit()
    if not (run_dir / "encoder.pt").exists():  # SIGTERM/SIGUSR1: the trainer checkpointed and returned early
        raise SystemExit(f"training of {run_dir} was interrupted (signal); rerun the same command to finish it")
