"""``ssl-toolkit eval``: embed every task once per model, run the protocols, write the report.

Systems compared in every table: the evaluated model, ``random`` (the same encoder and front end,
randomly initialized with the eval seed) and, for audio tasks, ``logmel`` (no learning: the
time-mean and time-max of each log-mel bin of the model's front end). With ``--checkpoint random``
the evaluated model *is* the random baseline, so it is not repeated.
"""

from __future__ import annotations

import json
import logging
import platform
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Optional

import torch

from ..atomic import atomic_write_text
from ..devices import resolve_device
from ..recipe import expand_path
from ..run_dir import RunDirError, check_output_location, held_lock
from .cache import EmbeddingCache
from .checkpoints import resolve_checkpoint
from .errors import EvalError
from .models import EvalModel, make_models
from .schema import AudioTask, EvalRecipe
from .task_runner import run_task
from .task_views import AudioTaskView, ImageTaskView

log = logging.getLogger("ssl_toolkit.eval")

RESULTS_FORMAT = "ssl_toolkit.eval.results/1"
LABEL_SUBSETS_FILE = "label_subsets.json"
SYSTEM_LABELS = {"model": "model", "random": "random init", "logmel": "log-mel (no learning)"}


def check_modality(model, tasks: list, checkpoint: str, recipe_name: str) -> None:
    """Every task must be of the kind of input the encoder takes (its class's ``modality``; unknown passes)."""
    takes = getattr(model.encoder, "modality", None)
    for task in tasks:
        kind = "audio" if isinstance(task, AudioTask) else "image"
        if takes is not None and takes != kind:
            raise EvalError(
                f"--checkpoint {checkpoint}: its encoder {model.encoder_spec.get('name')} takes "
                f"{takes} input, but task '{task.name}' of eval recipe '{recipe_name}' is an {kind} "
                f"task; evaluate it with an eval recipe of {takes} tasks, or pass a checkpoint of "
                f"an {kind} encoder"
            )


def check_protocols(task, model, checkpoint: str) -> None:
    """EvalError unless the encoder can run every protocol the task names (fine-tuning needs parameters)."""
    if "finetune" in task.protocols and not any(True for _ in model.encoder.parameters()):
        raise EvalError(
            f"task '{task.name}' key protocols: --checkpoint {checkpoint}: encoder "
            f"{model.encoder_spec.get('name')} has no parameters, so it cannot be fine-tuned; drop "
            "'finetune' from the task's protocols"
        )


def check_output_folder(out: Path, what: str = "") -> None:
    """EvalError unless ``out`` can be written and lies in no run directory a training process holds (eval, embed)."""
    busy = held_lock(out)
    if busy is not None:
        raise EvalError(
            f"{what}--out {out}: {busy} is a run directory in use by a training process; write into "
            "another folder or wait for the run to end"
        )
    try:
        check_output_location(out)
    except RunDirError as e:
        raise EvalError(f"{what}{e}") from None


def default_out_dir(recipe: EvalRecipe, checkpoint: str) -> Path:
    if recipe.out_dir:
        return expand_path(recipe.out_dir)
    if checkpoint == "random":
        tag = "random"
    else:
        p = Path(checkpoint.rstrip("/"))
        tag = p.name if p.is_dir() else (p.parent.parent.name if p.parent.name == "checkpoints" else p.stem)
    return Path("runs") / f"eval-{recipe.name}-{tag}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


class _Log:
    def __init__(self, quiet: bool):
        self.quiet = quiet

    def __call__(self, msg: str) -> None:
        if not self.quiet:
            print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- the command
def run_eval(
    recipe: EvalRecipe,
    checkpoint: str,
    out_dir: Optional[str | Path] = None,
    progress: bool = True,
    quiet: bool = False,
) -> dict:
    """Evaluate ``checkpoint`` on every task of ``recipe``; writes results.json, results.md and plots
    into the output folder and returns the results dictionary."""
    say = _Log(quiet)
    progress = progress and not quiet
    start = time.perf_counter()
    try:
        device = resolve_device(recipe.device)
    except ValueError as e:
        raise EvalError(str(e)) from None
    precision = "bf16" if recipe.precision == "auto" else recipe.precision
    out = Path(out_dir) if out_dir is not None else default_out_dir(recipe, checkpoint)
    check_output_folder(out)
    source = resolve_checkpoint(checkpoint)
    want_random = "random" in recipe.baselines and source.kind != "random"
    model, rnd = make_models(source, recipe.model, seed=recipe.seed, want_random=want_random, prenorm=recipe.prenorm)
    check_modality(model, recipe.parsed_tasks, checkpoint, recipe.name)
    model.to(device)
    if rnd is not None:
        rnd.to(device)
    cache = EmbeddingCache(expand_path(recipe.cache_dir) if recipe.cache_dir else None, recipe.cache)
    first = "random" if source.kind == "random" else "model"
    systems: list[tuple[str, Optional[EvalModel], str]] = [(first, model, "encoder")]  # log-mel has no model
    if rnd is not None:
        systems.append(("random", rnd, "encoder"))
    if "logmel" in recipe.baselines:
        systems.append(("logmel", None, "logmel"))
    say(
        f"eval '{recipe.name}': checkpoint {checkpoint} ({source.kind}"
        f"{', ' + str(source.path) if source.path and str(source.path) != checkpoint else ''}); "
        f"encoder {model.encoder_spec} from the {model.source}; front end "
        f"{' → '.join(s['name'] for s in model.frontend_spec) or 'none'}; {device}, {precision}; "
        f"cache {cache.folder if cache.enabled else 'off'}"
    )
    for note in source.notes:
        say(f"note: {note}")

    by_system: dict[str, dict] = {name: {} for name, _, _ in systems}
    artifacts, subsets = {}, {}
    for task in recipe.parsed_tasks:
        check_protocols(task, model, checkpoint)
        view = (
            AudioTaskView(task, model, recipe, cache, device, precision, progress)
            if isinstance(task, AudioTask)
            else ImageTaskView(task, recipe, cache, device, precision, progress)
        )
        res, art, record = run_task(view, systems, recipe, device, precision, progress, say)
        for name, entries in res.items():
            by_system[name].update(entries)
        artifacts.update(art)
        if task.label_fraction != [1.0]:
            subsets[task.name] = record

    results = {
        "format": RESULTS_FORMAT,
        "name": recipe.name,
        "checkpoint": checkpoint,
        "checkpoint_info": {
            "kind": source.kind,
            "path": str(source.path) if source.path else None,
            "sha256": source.checksum or None,
            "encoder": model.encoder_spec,
            "frontend": model.frontend_spec,
            "from": model.source,
            "notes": source.notes,
        },
        "tasks": by_system[first],
        "baselines": {
            name: {"label": SYSTEM_LABELS[name], "tasks": entries}
            for name, entries in by_system.items()
            if name != first
        },
        "protocol": {
            "linear": vars(recipe.linear).copy(),
            "knn": vars(recipe.knn).copy(),
            "finetune": recipe.to_dict()["finetune"],
            "prenorm": recipe.prenorm,
            "seed": recipe.seed,
        },
        "environment": {
            "device": str(device),
            "precision": precision,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "host": platform.node(),
        },
        "recipe": recipe.to_dict(),
        "created": datetime.now().isoformat(timespec="seconds"),
        "elapsed_s": None,
        "cache": {
            "dir": str(cache.folder) if cache.enabled else None,
            "hits": cache.hits,
            "misses": cache.misses,
            "rejected": cache.rejected,
        },
        "warnings": list(dict.fromkeys(w for e in by_system[first].values() for w in e.get("warnings", []))),
    }
    from .report import write_reports

    if subsets:  # the labelled items of each fraction, so a result can be reproduced elsewhere
        results["label_subsets"] = LABEL_SUBSETS_FILE
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / LABEL_SUBSETS_FILE, json.dumps(subsets, indent=1) + "\n")
    write_reports(results, artifacts, out, recipe.plots, progress=progress, start=start)
    say(f"results: {out / 'results.md'} (and results.json, plots/); {results['elapsed_s']:.1f} s")
    return results
