"""One task of an evaluation: every system × protocol × label fraction, over the task's units (split or folds).

Protocols: ``linear`` (EVAR's linear evaluation on frozen embeddings), ``knn`` (weighted kNN on frozen embeddings)
and ``finetune`` (eval/finetune.py; not for the log-mel baseline, which has nothing to train). Label fractions
(eval/label_subsets.py) restrict the labelled training items, and a task's valid split, to the same nested,
stratified subsets for every system and protocol. Results keys: the task name, ``/<protocol>`` when the task runs
several, ``@<percent>`` for a fraction below 1 (``cifar10/finetune@1%``).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Optional

import numpy as np

from .class_coverage import coverage_warnings
from .errors import task_error
from .finetune import finetune
from .label_subsets import fraction_tag, nested_subsets, subset_record
from .protocols import confusion_matrix, holdout_split, knn_predict, linear_probe, score, summarize
from .task_views import TaskView

FROZEN = ("linear", "knn")


def result_key(task: str, protocols: list, protocol: str, fraction: float) -> str:
    key = task if len(protocols) == 1 else f"{task}/{protocol}"
    return key if fraction == 1.0 else f"{key}@{fraction_tag(fraction)}"


def draw_subsets(view: TaskView, fractions: list, seed: int) -> tuple[dict, dict]:
    """Per unit: {fraction: (train rows, valid rows or None)}, and the record written to the eval folder."""
    chosen, record = {}, {}
    for u in view.units:
        try:
            train = nested_subsets(view.labels, u.train, fractions, seed, view.multi_label, view.classes)
        except ValueError as e:
            raise task_error(view.name, f"label_fraction: {u.name}: training items: {e}") from None
        try:
            valid = (
                nested_subsets(view.labels, u.valid, fractions, seed + 1, view.multi_label, view.classes)
                if u.valid is not None and len(u.valid)
                else None
            )
        except ValueError as e:
            raise task_error(view.name, f"label_fraction: {u.name}: the valid split's items: {e}") from None
        chosen[u.name] = {
            f: (u.train if f == 1.0 else train[f], None if valid is None else (u.valid if f == 1.0 else valid[f]))
            for f in fractions
        }
        record[u.name] = subset_record(view.names, train, valid)
    return chosen, {"seed": seed, "fractions": fractions, "units": record}


def seed_split(labels, train, valid, valid_fraction: float, seed: int, multi_label: bool):
    """(train rows, validation rows) of one seed: the given valid rows, else a stratified hold-out of ``train``."""
    if valid is not None:
        return train, valid
    tr_local, va_local = holdout_split(labels[train], valid_fraction, seed, multi_label)
    return train[tr_local], train[va_local]


def _linear(x, labels, train, valid, test, view, recipe, device, desc, progress):
    from tqdm.auto import tqdm

    lin, out = recipe.linear, []
    for r in tqdm(range(lin.runs), desc=desc, unit="seed", disable=not progress, leave=False):
        seed = recipe.seed + r
        tr, va = seed_split(labels, train, valid, lin.valid_fraction, seed, view.multi_label)
        res = linear_probe(
            x[tr],
            labels[tr],
            x[va],
            labels[va],
            x[test],
            labels[test],
            num_classes=view.num_classes,
            multi_label=view.multi_label,
            lr=lin.lr,
            weight_decay=lin.weight_decay,
            batch_size=lin.batch_size,
            epochs=lin.epochs,
            patience=lin.patience,
            seed=seed,
            device=device,
        )
        out.append(
            {
                "score": res.test_score,
                "best_epoch": int(res.best_epoch),
                "outputs": res.test_outputs,
                "n_train": len(tr),
                "n_valid": len(va),
            }
        )
    return out


def _knn(x, labels, train, test, view, recipe, device):
    if view.multi_label:
        raise ValueError("the kNN protocol needs single-label classes (this task is multi-label)")
    out = knn_predict(
        x[train], labels[train], x[test], view.num_classes, recipe.knn.k, recipe.knn.temperature, device=device
    )
    return [{"score": score(out, labels[test], False), "outputs": out, "n_train": len(train), "n_valid": 0}]


def finetune_config(recipe, system: str):
    """The ``finetune`` settings of ``system``: the random-init baseline trains at ``baseline_lr`` when it is set."""
    ft = recipe.finetune
    return dataclasses.replace(ft, lr=ft.baseline_lr) if system == "random" and ft.baseline_lr else ft


def _finetune(view, model, unit, info, labels, train, valid, test, recipe, system, device, precision, desc, progress):
    ft, out = finetune_config(recipe, system), []
    inputs = view.finetune_inputs(model, unit, info, recipe.batch_size)
    ft_precision = precision if ft.precision == "auto" else ft.precision
    for r in range(ft.runs):
        seed = recipe.seed + r
        tr, va = seed_split(labels, train, valid, ft.valid_fraction, seed, view.multi_label)
        res = finetune(
            model.encoder,
            inputs,
            labels,
            tr,
            va,
            test,
            num_classes=view.num_classes,
            multi_label=view.multi_label,
            cfg=ft,
            seed=seed,
            device=device,
            precision=ft_precision,
            progress=progress,
            desc=f"{desc} (seed {seed})",
        )
        out.append(
            {
                "score": res.test_score,
                "best_epoch": res.best_epoch,
                "outputs": res.test_outputs,
                "n_train": len(tr),
                "n_valid": len(va),
                "curve": {"seed": seed, "unit": unit.name, **res.curve},
            }
        )
    return out


class _Row:
    """One results entry being filled unit by unit."""

    def __init__(self):
        self.per_seed: list[list[float]] = []
        self.folds, self.best_epochs, self.curves = {}, [], []
        self.sizes, self.preds, self.truths = [], [], []
        self.seconds = 0.0

    def add(self, unit_name: str, runs: list[dict], test_labels: np.ndarray, seconds: float) -> None:
        if not self.per_seed:
            self.per_seed = [[] for _ in runs]
        for r, run in enumerate(runs):
            self.per_seed[r].append(run["score"])
            if "best_epoch" in run:
                self.best_epochs.append(run["best_epoch"])
            if "curve" in run:
                self.curves.append(run["curve"])
        if unit_name != "split":
            self.folds[unit_name.removeprefix("fold ")] = [float(run["score"]) for run in runs]
        self.sizes.append((runs[0]["n_train"], runs[0]["n_valid"], len(test_labels)))
        self.preds.append(runs[0]["outputs"])
        self.truths.append(test_labels)
        self.seconds += seconds


def _entry(view: TaskView, system: str, protocol: str, fraction: float, row: _Row, common: dict, recipe) -> dict:
    runs = [float(np.mean(s)) for s in row.per_seed]
    mean, std = summarize(runs)
    e = {
        "task": view.name,
        "kind": view.task.kind,
        "protocol": protocol,
        "metric": view.metric,
        "mean": mean,
        "std": std,
        "runs": runs,
        "label_fraction": fraction,
        "n_train": int(round(np.mean([s[0] for s in row.sizes]))),
        "n_valid": int(round(np.mean([s[1] for s in row.sizes]))),
        "n_test": int(sum(s[2] for s in row.sizes)),
        **common,
    }
    if protocol == "linear":
        e["best_epochs"] = row.best_epochs
    elif protocol == "knn":
        e.update(k=recipe.knn.k, temperature=recipe.knn.temperature)
    else:
        e.update(lr=finetune_config(recipe, system).lr, best_epochs=row.best_epochs, curves=row.curves)
    if row.folds:
        e["folds"] = row.folds
    e["elapsed_s"] = round(row.seconds, 2)
    return e


def run_task(
    view: TaskView, systems: list, recipe, device, precision: str, progress: bool, say
) -> tuple[dict, dict, dict]:
    """(results per system {key: entry}, plot artifacts {task: ...}, the label subsets record)."""
    task = view.task
    protocols, fractions = list(task.protocols), list(task.label_fraction)
    say(
        view.describe()
        + (f"; label fractions {', '.join(fraction_tag(f) for f in fractions)}" if fractions != [1.0] else "")
    )
    chosen, record = draw_subsets(view, fractions, recipe.seed)
    by_unit = view.unit_counts()
    warnings = coverage_warnings(task.name, [str(c) for c in view.classes], by_unit)
    for w in warnings[:10]:
        say(f"warning: {w}")
    if len(warnings) > 10:
        say(f"warning: ... {len(warnings) - 10} more (results.json: warnings)")
    coverage = {"class_counts": {"classes": [str(c) for c in view.classes], "units": by_unit}, "warnings": warnings}
    results, artifacts = {}, {}
    for sys_name, model, feature in systems:
        if feature == "logmel" and protocols == ["finetune"]:
            continue
        rows = {(p, f): _Row() for p in protocols for f in fractions if not (p == "finetune" and feature != "encoder")}
        common: dict = {"num_classes": view.num_classes}
        cached, tsne_x, tsne_y, t_embed = [], [], [], 0.0
        for unit in view.units:
            t0 = time.perf_counter()
            got = view.features(model, feature, unit)
            t_embed += time.perf_counter() - t0
            if got is None:
                if view.task.kind == "audio_classification":
                    say(f"task '{task.name}': no log_mel op in the front end; the {sys_name} baseline is left out")
                rows = {}
                break
            x, info = got
            ok = info.get("ok")

            def keep(idx, ok=ok):  # the rows that could be read (unreadable images are left out)
                return idx if ok is None or idx is None else idx[ok[idx]]

            cached.append(bool(info.get("cached")))
            common["embedding_dim"] = int(x.shape[1])
            if "prenorm" in info and sys_name != "logmel":
                common["prenorm"] = info["prenorm"]
            test = keep(unit.test)
            tsne_x.append(x[test])
            tsne_y.append(view.labels[test])
            for (protocol, f), row in rows.items():
                train, valid = (keep(i) for i in chosen[unit.name][f])
                desc = f"{task.name}: {protocol} of {sys_name}" + ("" if unit.name == "split" else f" ({unit.name})")
                t0 = time.perf_counter()
                try:
                    if protocol == "linear":
                        runs = _linear(x, view.labels, train, valid, test, view, recipe, device, desc, progress)
                    elif protocol == "knn":
                        runs = _knn(x, view.labels, train, test, view, recipe, device)
                    else:
                        runs = _finetune(
                            view,
                            model,
                            unit,
                            info,
                            view.labels,
                            train,
                            valid,
                            test,
                            recipe,
                            sys_name,
                            device,
                            precision,
                            desc,
                            progress,
                        )
                except ValueError as e:
                    raise task_error(task.name, f"{protocol}: {unit.name}: {e}") from None
                row.add(unit.name, runs, view.labels[test], time.perf_counter() - t0)
        entries = {}
        for (protocol, f), row in rows.items():
            key = result_key(task.name, protocols, protocol, f)
            entries[key] = _entry(
                view,
                sys_name,
                protocol,
                f,
                row,
                {**common, "cached": all(cached), "embed_s": round(t_embed, 2)},
                recipe,
            )
            entries[key].update(coverage)
            if getattr(view.data, "skipped", None):
                entries[key]["skipped_files"] = dict(view.data.skipped)
            got_entry = entries[key]
            say(
                f"  {sys_name:>7} {protocol:>8}{'' if f == 1.0 else ' @' + fraction_tag(f):>6}: "
                f"{got_entry['metric']} {100 * got_entry['mean']:.2f} ± {100 * got_entry['std']:.2f}  "
                f"({got_entry['elapsed_s']:.1f} s"
                f"{', cached' if all(cached) and protocol in FROZEN else ''})"
            )
        results[sys_name] = entries
        if sys_name == systems[0][0] and rows:
            first = rows[(protocols[0], fractions[-1])]
            art = {
                "classes": view.classes,
                "multi_label": view.multi_label,
                "tsne_x": np.concatenate(tsne_x),
                "tsne_y": np.concatenate(tsne_y),
            }
            if not view.multi_label:
                art["confusion"] = confusion_matrix(
                    np.concatenate(first.truths), np.concatenate(first.preds).argmax(1), view.num_classes
                )
            artifacts[task.name] = art
    return results, artifacts, record


def first_entry(entries: dict, task: str) -> Optional[dict]:
    return next((e for e in entries.values() if e.get("task") == task), None)
