"""results.json, results.md and the plots of an evaluation.

results.json (format ``ssl_toolkit.eval.results/1``)::

    {"format": ..., "name": <eval recipe name>, "checkpoint": <as given>,
     "checkpoint_info": {"kind": random|checkpoint|encoder|official, "path", "sha256", "encoder", "frontend", ...},
     "tasks": {<key>: ENTRY, ...},                       # the evaluated model
     "baselines": {"random": {"label": ..., "tasks": {<key>: ENTRY}},
                   "logmel": {"label": ..., "tasks": {<key>: ENTRY}}},
     "protocol": {...}, "environment": {...}, "recipe": {...}, "created": ..., "elapsed_s": ..., "cache": {...},
     "warnings": [every task's coverage warnings]}

    ENTRY = {"task", "kind", "protocol": linear|knn|finetune, "label_fraction", "metric": accuracy|mAP, "mean",
             "std", "runs": [per seed], "n_train", "n_valid", "n_test", "num_classes", "embedding_dim",
             "elapsed_s" (the protocol), "embed_s" (the frozen embeddings), ... ,
             "lr", "best_epochs" (the tested epoch per run), "curves": [per run: {"seed", "unit", "train_loss",
             "valid", "lr"} per epoch] (finetune),
             "folds": {<fold>: [per seed]} (k-fold tasks),
             "class_counts": {"classes": [...], "units": {<split | fold>: {"train", "valid", "test": [per class]}}},
             "warnings": [a class the probe cannot learn or early stopping cannot see (eval/class_coverage.py)]}

``<key>`` is the task name, ``<task>/<protocol>`` for a task with several protocols, and ``@<p>%`` after it for a
label fraction below 1 (eval/task_runner.py); ``label_subsets`` names the file of the chosen items.
Scores are fractions (0–1); ``std`` is the sample standard deviation over the seeds (k-fold: of the
per-seed means over the folds). With ``--checkpoint random`` the evaluated model is the random
baseline: it is under "tasks" and "baselines" has no "random" entry.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

from ..atomic import atomic_write_text
from .class_coverage import markdown_table
from .results import systems_of

log = logging.getLogger("ssl_toolkit.eval")


def _finite(obj):
    """JSON without NaN/inf (they become null)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalars
        return _finite(obj.item())
    return obj


def _pct(entry: dict | None) -> str:
    if not entry or entry.get("mean") is None:
        return "–"
    if len(entry.get("runs", [])) > 1:
        return f"{100 * entry['mean']:.2f} ± {100 * (entry.get('std') or 0):.2f}"
    return f"{100 * entry['mean']:.2f}"


def markdown(results: dict) -> str:
    systems = systems_of(results)
    info = results.get("checkpoint_info", {})
    lines = [f"# Evaluation `{results['name']}` — checkpoint `{results['checkpoint']}`", ""]
    enc = info.get("encoder") or {}
    lines.append(
        f"- encoder: `{enc.get('name', '?')}` "
        f"({', '.join(f'{k}={v}' for k, v in enc.items() if k != 'name') or 'defaults'}), "
        f"from the {info.get('from', '?')}"
    )
    fe = info.get("frontend") or []
    lines.append(f"- front end: {' → '.join(f['name'] for f in fe) or 'none'}")
    if info.get("sha256"):
        lines.append(f"- weights: `{info.get('path')}` (sha256 {info['sha256'][:12]}…)")
    proto = results.get("protocol", {})
    lin = proto.get("linear", {})
    lines.append(
        f"- linear evaluation: Adam lr {lin.get('lr')}, weight decay {lin.get('weight_decay')}, batch "
        f"min({lin.get('batch_size')}, N), ≤ {lin.get('epochs')} epochs, early stopping patience "
        f"{lin.get('patience')} on the validation score, {lin.get('runs')} seeds (mean ± std); pre_norm "
        f"statistics from the {'task training clips' if proto.get('prenorm') == 'task' else 'checkpoint'}"
    )
    knn = proto.get("knn", {})
    entries = [e for _, _, es in systems_of(results) for e in es.values()]
    if any(e.get("protocol") == "knn" for e in entries):
        lines.append(f"- kNN: cosine, k={knn.get('k')}, temperature {knn.get('temperature')}")
    ft = proto.get("finetune") or {}
    if any(e.get("protocol") == "finetune" for e in entries):
        aug = ", ".join(a.get("name", "?") for a in ft.get("augment") or []) or "none"
        scratch_lr = "" if ft.get("baseline_lr") is None else f" (random init: {ft['baseline_lr']})"
        lines.append(
            f"- fine-tuning (encoder + BatchNorm/Linear head): SGD lr {ft.get('lr')}{scratch_lr} (momentum "
            f"{ft.get('momentum')}{', Nesterov' if ft.get('nesterov') else ''}, weight decay "
            f"{ft.get('weight_decay')}), {ft.get('warmup_epochs')} warm-up + cosine over {ft.get('epochs')} "
            f"epochs, batch {ft.get('batch_size')}, mixup α {ft.get('mixup')}, augmentations {aug}; the "
            f"{'last' if ft.get('select_epoch') == 'last' else 'best validation'} epoch is tested; "
            f"{ft.get('runs')} seeds"
        )
    if any(e.get("label_fraction", 1.0) != 1.0 for e in entries):
        lines.append(
            f"- few labels: `<task>@p%` rows use p % of the training (and valid) labels, the same nested, "
            f"stratified subset for every system and protocol ({results.get('label_subsets')})"
        )
    env = results.get("environment", {})
    lines.append(f"- {env.get('device')}, {env.get('precision')} embedding, {results.get('elapsed_s')} s in all")
    lines.append("")
    header = ["task", "metric"] + [label for _, label, _ in systems] + ["train / valid / test", "classes"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] * 2 + ["---:"] * (len(systems)) + ["---:", "---:"]) + "|")
    keys = list(results["tasks"])
    for _, _, system_entries in systems[1:]:
        keys += [k for k in system_entries if k not in keys]
    for key in keys:
        ref: dict = next((e[key] for _, _, e in systems if key in e), {})
        protocol = {"knn": " (kNN)", "finetune": " (fine-tuned)"}.get(ref.get("protocol", ""), "")
        metric = ref.get("metric", "?") + protocol
        cells = [key, metric] + [_pct(e.get(key)) for _, _, e in systems]
        sizes = f"{ref.get('n_train', '?')} / {ref.get('n_valid', '?')} / {ref.get('n_test', '?')}"
        if "folds" in ref:
            sizes += f" ({len(ref['folds'])}-fold)"
        cells += [sizes, str(ref.get("num_classes", "?"))]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "Scores in %. Every column uses the same front end, embedding and protocol; `random init` is the "
        "same encoder with random weights, `log-mel` the time-mean and time-max of each log-mel bin."
    )
    if results.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in results["warnings"]]
    first: dict[str, dict] = {}  # an image task's protocols share one entry's counts
    for k, e in results["tasks"].items():
        first.setdefault(e.get("task", k), e)
    tables = [line for task, e in first.items() for line in markdown_table(task, e)]
    if tables:
        lines += ["", "## Items per class", ""] + tables
    skipped = {k: e.get("skipped_files") for k, e in results["tasks"].items() if e.get("skipped_files")}
    for k, files in skipped.items():
        lines.append("")
        lines.append(
            f"Task `{k}`: {len(files)} unreadable file(s) left out: "
            + ", ".join(f"`{p}` ({r})" for p, r in list(files.items())[:5])
        )
    plots = results.get("plots") or []
    if plots:
        lines.append("")
        lines.append("## Plots")
        lines.append("")
        for p in plots:
            lines.append(f"- [{p}]({p})")
        if any(p.endswith("_tsne.png") for p in plots):
            lines.append("")
            lines.append(TSNE_NOTE)
    return "\n".join(lines) + "\n"


TSNE_NOTE = (
    "The `*_tsne.png` maps place a stratified sample of the task's test embeddings (the evaluated model's, "
    "standardized, PCA to 50 dimensions) in 2-D with t-SNE, coloured by the true label, which t-SNE does not "
    "see: items with similar embeddings land near each other, so one tight patch per colour means the "
    "classes are separable. Distances between patches, patch sizes and the axes carry no meaning, and "
    "t-SNE can show clusters that a linear probe cannot separate (or hide ones it can): read the "
    "accuracy table first."
)


def write_reports(
    results: dict, artifacts: dict, out: Path, plot_cfg=None, progress: bool = True, start: float | None = None
) -> None:
    """Plots, then results.json and results.md (``elapsed_s`` measured from ``start``, plots included)."""
    import time

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    plots: list[Path] = []
    if plot_cfg is None or plot_cfg.enabled:
        from . import plots as plotting

        try:
            plots = plotting.eval_plots(results, artifacts, out / "plots", plot_cfg, progress=progress)
        except Exception as e:  # noqa: BLE001 - a plot must never lose the numbers
            log.warning("plots failed (%s: %s); results are written without them", type(e).__name__, e)
    results["plots"] = [str(Path(p).relative_to(out)) for p in plots]
    if start is not None:
        results["elapsed_s"] = round(time.perf_counter() - start, 2)
    atomic_write_text(out / "results.json", json.dumps(_finite(results), indent=2) + "\n")
    atomic_write_text(out / "results.md", markdown(results))
