"""``ssl-toolkit eval``: embed every task once per model, run the protocols, write the report.

Systems compared in every table: the evaluated model, ``random`` (the same encoder and front end,
randomly initialized with the eval seed) and, for audio tasks, ``logmel`` (no learning: the
time-mean and time-max of each log-mel bin of the model's front end). With ``--checkpoint random``
the evaluated model *is* the random baseline, so it is not repeated.
"""
from __future__ import annotations

import logging
import platform
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..audio.embedding import frontend_sample_rate, split_frontend
from ..devices import resolve_device
from ..recipe import expand_path
from ..run_dir import RunDirError, check_output_location, held_lock
from .audio_embedder import AudioEmbedder
from .audio_tasks import load_task
from . import image as image_mod
from .cache import EmbeddingCache
from .class_coverage import counts, coverage_warnings, split_counts
from .errors import EvalError, task_error
from .models import EvalModel, make_models, resolve_checkpoint
from .protocols import confusion_matrix, holdout_split, knn_predict, linear_probe, score, summarize
from .schema import AudioTask, EvalRecipe, ImageTask

log = logging.getLogger("ssl_toolkit.eval")

RESULTS_FORMAT = "ssl_toolkit.eval.results/1"
SYSTEM_LABELS = {"model": "model", "random": "random init", "logmel": "log-mel (no learning)"}


def check_modality(model, tasks: list, checkpoint: str, recipe_name: str) -> None:
    """Every task must be of the kind of input the encoder takes (its class's ``modality``; unknown passes)."""
    takes = getattr(model.encoder, "modality", None)
    for task in tasks:
        kind = "audio" if isinstance(task, AudioTask) else "image"
        if takes is not None and takes != kind:
            raise EvalError(f"--checkpoint {checkpoint}: its encoder {model.encoder_spec.get('name')} takes "
                            f"{takes} input, but task '{task.name}' of eval recipe '{recipe_name}' is an {kind} "
                            f"task; evaluate it with an eval recipe of {takes} tasks, or pass a checkpoint of "
                            f"an {kind} encoder")


def check_output_folder(out: Path, what: str = "") -> None:
    """EvalError unless ``out`` can be written and lies in no run directory a training process holds (eval, embed)."""
    busy = held_lock(out)
    if busy is not None:
        raise EvalError(f"{what}--out {out}: {busy} is a run directory in use by a training process; write into "
                        "another folder or wait for the run to end")
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


# ----------------------------------------------------------------------------- linear runs
def _linear_runs(x: np.ndarray, labels: np.ndarray, train: np.ndarray, valid: Optional[np.ndarray], test: np.ndarray,
                 num_classes: int, multi_label: bool, recipe: EvalRecipe, device, desc: str, progress: bool):
    """Per seed: (test score, valid score, best epoch, test outputs)."""
    from tqdm.auto import tqdm

    lin = recipe.linear
    out = []
    for r in tqdm(range(lin.runs), desc=desc, unit="seed", disable=not progress, leave=False):
        seed = recipe.seed + r
        if valid is None:
            tr_local, va_local = holdout_split(labels[train], lin.valid_fraction, seed, multi_label)
            tr, va = train[tr_local], train[va_local]
        else:
            tr, va = train, valid
        res = linear_probe(x[tr], labels[tr], x[va], labels[va], x[test], labels[test], num_classes=num_classes,
                           multi_label=multi_label, lr=lin.lr, weight_decay=lin.weight_decay,
                           batch_size=lin.batch_size, epochs=lin.epochs, patience=lin.patience, seed=seed,
                           device=device)
        out.append((res.test_score, res.valid_score, res.best_epoch, res.test_outputs, len(tr), len(va)))
    return out


def _entry(task_name: str, kind: str, protocol: str, metric: str, runs: list[float], **extra) -> dict:
    mean, std = summarize(runs)
    return {"task": task_name, "kind": kind, "protocol": protocol, "metric": metric, "mean": mean, "std": std,
            "runs": [float(r) for r in runs], **extra}


def _coverage(task: str, classes: list, by_unit: dict, say) -> dict:
    """Entry fields of a task's per-class counts and coverage warnings (eval/class_coverage.py), said once."""
    warnings = coverage_warnings(task, [str(c) for c in classes], by_unit)
    for w in warnings[:10]:
        say(f"warning: {w}")
    if len(warnings) > 10:
        say(f"warning: ... {len(warnings) - 10} more (results.json: warnings)")
    return {"class_counts": {"classes": [str(c) for c in classes], "units": by_unit}, "warnings": warnings}


# ----------------------------------------------------------------------------- audio
def _run_audio(task: AudioTask, systems: list, recipe: EvalRecipe, cache, device, precision, progress, say):
    data = load_task(task)
    model0: EvalModel = systems[0][1]
    sample_rate = frontend_sample_rate(model0.frontend)
    emb = AudioEmbedder(data, sample_rate, cache, device, precision, recipe.batch_size, recipe.prenorm,
                                  recipe.seed, progress)
    data = emb.data
    metric = "mAP" if task.multi_label else "accuracy"
    say(f"task '{task.name}': {len(data.files)} clips, {data.num_classes} classes, "
        f"{'k-fold over ' + str(len(data.units)) + ' folds' if task.fold_column else 'split'}; metric {metric}")
    by_unit = {u.name: split_counts(data.labels, u.train, u.valid, u.test, data.num_classes) for u in data.units}
    coverage = _coverage(task.name, data.classes, by_unit, say)
    results, artifacts = {}, {}
    for sys_name, model, feature in systems:
        if feature == "logmel":
            names = [s.get("name") for s in model0.frontend_spec]
            if "log_mel" not in names:
                say(f"task '{task.name}': no log_mel op in the front end; the logmel baseline is left out")
                continue
            upstream, _, _ = split_frontend(model0.frontend)
            up_spec = model0.frontend_spec[:len(upstream)]
        t0 = time.perf_counter()
        per_seed = [[] for _ in range(recipe.linear.runs)]
        folds, best_epochs, cached, prenorm_info = {}, [], [], None
        sizes = []
        preds, truths, test_x, test_y = [], [], [], []
        dim = 0
        for unit in data.units:
            if feature == "logmel":
                x, info = emb.embeddings(None, unit, "logmel", frontend=upstream, frontend_spec=up_spec)
            else:
                x, info = emb.embeddings(model, unit, "encoder")
            dim = x.shape[1]
            cached.append(bool(info.get("cached")))
            if prenorm_info is None and "prenorm" in info:
                prenorm_info = info["prenorm"]
            desc = f"{task.name}: linear eval of {sys_name}" + ("" if unit.name == "split" else f" ({unit.name})")
            try:
                runs = _linear_runs(x, data.labels, unit.train, unit.valid, unit.test, data.num_classes,
                                    task.multi_label, recipe, device, desc, progress)
            except ValueError as e:
                raise task_error(task.name, f"{unit.name}: {e}") from None
            for r, (s, _, be, outputs, n_tr, n_va) in enumerate(runs):
                per_seed[r].append(s)
                best_epochs.append(int(be))
            sizes.append((runs[0][4], runs[0][5], len(unit.test)))
            if unit.name != "split":
                folds[unit.name.removeprefix("fold ")] = [float(r[0]) for r in runs]
            outputs0 = runs[0][3]
            preds.append(outputs0)
            truths.append(data.labels[unit.test])
            test_x.append(x[unit.test])
            test_y.append(data.labels[unit.test])
        run_scores = [float(np.mean(s)) for s in per_seed]
        n_units = len(data.units)
        extra = {"n_train": int(round(np.mean([s[0] for s in sizes]))),
                 "n_valid": int(round(np.mean([s[1] for s in sizes]))),
                 "n_test": int(sum(s[2] for s in sizes)), "num_classes": data.num_classes, "embedding_dim": int(dim),
                 "best_epochs": best_epochs, "cached": all(cached), "elapsed_s": round(time.perf_counter() - t0, 2)}
        if n_units > 1:
            extra["folds"] = folds
        if prenorm_info is not None and sys_name != "logmel":
            extra["prenorm"] = prenorm_info
        if data.skipped:
            extra["skipped_files"] = dict(data.skipped)
        results[sys_name] = {task.name: _entry(task.name, task.kind, "linear", metric, run_scores, **extra,
                                               **coverage)}
        say(f"  {sys_name:>7}: {metric} {100 * np.mean(run_scores):.2f} ± {100 * summarize(run_scores)[1]:.2f}"
            f"  ({'cached' if all(cached) else 'embedded'}, {extra['elapsed_s']:.1f} s)")
        if sys_name == systems[0][0]:
            outputs = np.concatenate(preds)
            y = np.concatenate(truths)
            art = {"classes": data.classes, "multi_label": task.multi_label,
                   "tsne_x": np.concatenate(test_x), "tsne_y": np.concatenate(test_y)}
            if not task.multi_label:
                art["confusion"] = confusion_matrix(y, outputs.argmax(1), data.num_classes)
            artifacts[task.name] = art
    return results, artifacts


# ----------------------------------------------------------------------------- image
def _run_image(task: ImageTask, systems: list, recipe: EvalRecipe, cache, device, precision, progress, say):
    data = image_mod.load_task(task)
    emb = image_mod.ImageEmbedder(data, cache, device, precision, recipe.batch_size, recipe.num_workers, progress)
    say(f"task '{task.name}': {len(data.splits['train'].dataset)} train / {len(data.splits['test'].dataset)} test "
        f"images, {data.num_classes} classes; protocols {', '.join(task.protocols)}")
    coverage = _coverage(task.name, data.classes, {"split": {
        role: counts(s.labels, np.arange(len(s.labels)), data.num_classes) if (s := data.splits.get(role)) else None
        for role in ("train", "valid", "test")}}, say)
    results, artifacts = {}, {}
    for sys_name, model, feature in systems:
        if feature != "encoder":
            continue
        t0 = time.perf_counter()
        feats, labels, hits = {}, {}, []
        for role in data.splits:
            x, ok, hit = emb.embeddings(model, role)
            feats[role], labels[role] = x[ok], data.splits[role].labels[ok]
            hits.append(hit)
        x_all = np.concatenate([feats["train"], feats["test"]] + ([feats["valid"]] if "valid" in feats else []))
        y_all = np.concatenate([labels["train"], labels["test"]] + ([labels["valid"]] if "valid" in labels else []))
        n_tr, n_te = len(feats["train"]), len(feats["test"])
        train, test = np.arange(n_tr), np.arange(n_tr, n_tr + n_te)
        valid = np.arange(n_tr + n_te, len(x_all)) if "valid" in feats else None
        entries = {}
        art = {"classes": data.classes, "multi_label": False, "tsne_x": feats["test"], "tsne_y": labels["test"]}
        for protocol in task.protocols:
            key = task.name if len(task.protocols) == 1 else f"{task.name}/{protocol}"
            common = {"num_classes": data.num_classes, "embedding_dim": int(x_all.shape[1]), "cached": all(hits)}
            if protocol == "linear":
                runs = _linear_runs(x_all, y_all, train, valid, test, data.num_classes, False, recipe, device,
                                    f"{task.name}: linear eval of {sys_name}", progress)
                scores = [r[0] for r in runs]
                entries[key] = _entry(task.name, task.kind, "linear", "accuracy", scores, n_train=runs[0][4],
                                      n_valid=runs[0][5], n_test=n_te, best_epochs=[int(r[2]) for r in runs], **common)
                if "confusion" not in art:
                    art["confusion"] = confusion_matrix(labels["test"], runs[0][3].argmax(1), data.num_classes)
            else:
                out = knn_predict(feats["train"], labels["train"], feats["test"], data.num_classes, recipe.knn.k,
                                  recipe.knn.temperature, device=device)
                acc = score(out, labels["test"], False)
                entries[key] = _entry(task.name, task.kind, "knn", "accuracy", [acc], n_train=n_tr, n_valid=0,
                                      n_test=n_te, k=recipe.knn.k, temperature=recipe.knn.temperature, **common)
                art.setdefault("confusion_knn", confusion_matrix(labels["test"], out.argmax(1), data.num_classes))
            say(f"  {sys_name:>7} {protocol:>6}: accuracy {100 * entries[key]['mean']:.2f} ± "
                f"{100 * entries[key]['std']:.2f}")
        for e in entries.values():
            e["elapsed_s"] = round(time.perf_counter() - t0, 2)
            e.update(coverage)
        results[sys_name] = entries
        if sys_name == systems[0][0]:
            if "confusion" not in art and "confusion_knn" in art:
                art["confusion"] = art.pop("confusion_knn")
            artifacts[task.name] = art
    return results, artifacts


# ----------------------------------------------------------------------------- the command
def run_eval(recipe: EvalRecipe, checkpoint: str, out_dir: Optional[str | Path] = None, progress: bool = True,
             quiet: bool = False) -> dict:
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
    systems = [(first, model, "encoder")]
    if rnd is not None:
        systems.append(("random", rnd, "encoder"))
    if "logmel" in recipe.baselines:
        systems.append(("logmel", None, "logmel"))
    say(f"eval '{recipe.name}': checkpoint {checkpoint} ({source.kind}"
        f"{', ' + str(source.path) if source.path and str(source.path) != checkpoint else ''}); "
        f"encoder {model.encoder_spec} from the {model.source}; front end "
        f"{' → '.join(s['name'] for s in model.frontend_spec) or 'none'}; {device}, {precision}; "
        f"cache {cache.folder if cache.enabled else 'off'}")
    for note in source.notes:
        say(f"note: {note}")

    by_system: dict[str, dict] = {name: {} for name, _, _ in systems}
    artifacts = {}
    for task in recipe.parsed_tasks:
        runner = _run_audio if isinstance(task, AudioTask) else _run_image
        res, art = runner(task, systems, recipe, cache, device, precision, progress, say)
        for name, entries in res.items():
            by_system[name].update(entries)
        artifacts.update(art)

    results = {
        "format": RESULTS_FORMAT,
        "name": recipe.name,
        "checkpoint": checkpoint,
        "checkpoint_info": {"kind": source.kind, "path": str(source.path) if source.path else None,
                            "sha256": source.checksum or None, "encoder": model.encoder_spec,
                            "frontend": model.frontend_spec, "from": model.source, "notes": source.notes},
        "tasks": by_system[first],
        "baselines": {name: {"label": SYSTEM_LABELS[name], "tasks": entries}
                      for name, entries in by_system.items() if name != first},
        "protocol": {"linear": vars(recipe.linear).copy(), "knn": vars(recipe.knn).copy(),
                     "prenorm": recipe.prenorm, "seed": recipe.seed},
        "environment": {"device": str(device), "precision": precision, "torch": torch.__version__,
                        "python": platform.python_version(), "host": platform.node()},
        "recipe": recipe.to_dict(),
        "created": datetime.now().isoformat(timespec="seconds"),
        "elapsed_s": None,
        "cache": {"dir": str(cache.folder) if cache.enabled else None, "hits": cache.hits, "misses": cache.misses,
                  "rejected": cache.rejected},
        "warnings": list(dict.fromkeys(w for e in by_system[first].values() for w in e.get("warnings", []))),
    }
    from .report import write_reports

    write_reports(results, artifacts, out, recipe.plots, progress=progress, start=start)
    say(f"results: {out / 'results.md'} (and results.json, plots/); {results['elapsed_s']:.1f} s")
    return results
