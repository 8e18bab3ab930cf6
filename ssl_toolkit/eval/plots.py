"""Plots (matplotlib, Agg): training curves of a run, and an evaluation's bar charts, confusion
matrices and t-SNE maps."""

from __future__ import annotations

import csv
import logging
import math
from pathlib import Path
from typing import Optional

import numpy as np

from .results import safe_name, systems_of

log = logging.getLogger("ssl_toolkit.eval")


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, out: Path) -> Path:
    """Lay out, write ``fig`` as a PNG at ``out`` (creating its folder) and free it."""
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    _plt().close(fig)
    return out


# ----------------------------------------------------------------------------- training curves
CURVES = (
    ("loss", "loss", False),
    ("lr", "learning rate", False),
    ("tau", "EMA τ", False),
    ("collapse", "collapse monitor (std × √d)", False),
    ("rankme", "RankMe, encoder features", False),
    ("rankme_proj", "RankMe, projections", False),
    ("samples_per_s", "throughput (samples/s)", False),
)


def _read_metrics(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def training_curves(run_dir: str | Path, out: Optional[str | Path] = None) -> Path:
    """Draw loss, lr, τ, collapse (and throughput) against the step from ``RUN_DIR/metrics.csv``
    into ``out`` (default ``RUN_DIR/plots/training.png``)."""
    run_dir = Path(run_dir)
    path = run_dir / "metrics.csv" if run_dir.is_dir() else run_dir
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no metrics.csv (is {run_dir} a training run directory?)")
    rows = _read_metrics(path)
    if not rows:
        raise ValueError(f"{path} has no rows yet (the run logged nothing)")
    if "step" not in rows[0]:
        raise ValueError(f"{path} has no 'step' column (columns: {', '.join(rows[0])})")
    step = np.array([_num(r["step"]) for r in rows])
    panels = [(k, title) for k, title, _ in CURVES if k in rows[0]]
    panels += [
        (k, f"probe {k.removeprefix('monitor_')} (test %)")
        for k in rows[0]
        if k.startswith("monitor_") and not k.endswith("_init")
    ]
    plt = _plt()
    cols = 3 if len(panels) > 4 else 2
    nrows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(5 * cols, 3.2 * nrows), squeeze=False)
    for ax, (key, title) in zip(axes.flat, panels):
        scale = 100.0 if key.startswith("monitor_") else 1.0  # probe scores in %
        y = scale * np.array([_num(r[key]) for r in rows])
        ok = np.isfinite(y)
        init = math.nan
        if key.startswith(("rankme", "monitor_")) and f"{key}_init" in rows[0]:  # the random-init value, at step 0
            init = scale * next((v for v in (_num(r[f"{key}_init"]) for r in rows) if np.isfinite(v)), math.nan)
        x0, y0 = (step[ok], y[ok]) if not np.isfinite(init) else (np.r_[0, step[ok]], np.r_[init, y[ok]])
        ax.plot(x0, y0, lw=1.2, marker="o" if ok.sum() < 30 else None, ms=3)
        if key == "loss" and ok.sum() > 10:  # smoothed trend
            w = max(3, ok.sum() // 20)
            smooth = np.convolve(y[ok], np.ones(w) / w, mode="valid")
            ax.plot(step[ok][w - 1 :], smooth, lw=2, color="C3", label=f"mean of {w}")
            ax.legend(fontsize=8)
        if key == "collapse":
            ax.axhline(0.25, color="grey", ls="--", lw=0.8)
            ax.set_ylim(bottom=0)
        if np.isfinite(init):  # for scale: the curve starts there
            ax.axhline(init, color="grey", ls="--", lw=0.8, label=f"random init {init:.1f} (step 0)")
            ax.legend(fontsize=8)
        if key.startswith(("rankme", "monitor_")):
            ax.set_ylim(bottom=0)
        if key == "lr":
            ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    epochs = [e for e in (_num(r.get("epoch")) for r in rows) if np.isfinite(e)]
    title = f"{path.parent.name}: {int(step[-1])} steps"
    if epochs:
        title += f", epoch {int(max(epochs))} (0-based)"
    fig.suptitle(title)
    return _save(fig, Path(out) if out is not None else (path.parent / "plots" / "training.png"))


# ----------------------------------------------------------------------------- eval plots
def bar_chart(results: dict, key: str, out: Path) -> Optional[Path]:
    """Model vs baselines on one task (mean ± std over seeds, every run as a dot)."""
    systems = [(label, e[key]) for _, label, e in systems_of(results) if key in e and e[key].get("mean") is not None]
    if not systems:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(systems), 3.6))
    means = [100 * e["mean"] for _, e in systems]
    stds = [100 * (e.get("std") or 0) for _, e in systems]
    colors = ["C0"] + [f"C{i + 1}" for i in range(len(systems) - 1)]
    xs = np.arange(len(systems))
    ax.bar(xs, means, yerr=stds, capsize=5, color=colors, alpha=0.85)
    for x, (_, e) in zip(xs, systems):
        runs = [100 * r for r in e.get("runs", []) if r is not None]
        ax.scatter(
            np.full(len(runs), x) + np.linspace(-0.12, 0.12, len(runs)) if runs else [],
            runs,
            s=10,
            color="black",
            zorder=3,
        )
    for x, m in zip(xs, means):
        ax.text(x, m + 1, f"{m:.1f}", ha="center", va="bottom", fontsize=8)
    ref = systems[0][1]
    ax.set_xticks(xs, [label.replace(" (", "\n(") for label, _ in systems], fontsize=8)
    ax.set_ylabel(f"{ref.get('metric')} (%)")
    ax.set_ylim(0, max(100, max(m + s for m, s in zip(means, stds)) + 8))
    chance = 100.0 / ref["num_classes"] if ref.get("metric") == "accuracy" and ref.get("num_classes") else None
    if chance:
        ax.axhline(chance, color="grey", ls=":", lw=1)
        ax.text(xs[-1] + 0.45, chance, "chance", fontsize=7, color="grey", va="bottom", ha="right")
    frac = ref.get("label_fraction", 1.0)
    ax.set_title(
        f"{key} ({ref.get('protocol')}{'' if frac == 1.0 else f', {100 * frac:.4g} % of the labels'})", fontsize=10
    )
    return _save(fig, out)


def confusion_plot(cm: np.ndarray, classes: list[str], title: str, out: Path) -> Path:
    plt = _plt()
    n = len(classes)
    size = min(12, 2.5 + 0.45 * n)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    rows = cm.sum(1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    if n <= 30:
        ax.set_xticks(range(n), classes, rotation=90 if n > 10 else 45, fontsize=7)
        ax.set_yticks(range(n), classes, fontsize=7)
        if n <= 15:
            for i in range(n):
                for j in range(n):
                    if cm[i, j]:
                        ax.text(
                            j,
                            i,
                            str(cm[i, j]),
                            ha="center",
                            va="center",
                            fontsize=7,
                            color="white" if norm[i, j] > 0.5 else "black",
                        )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = np.trace(cm) / max(cm.sum(), 1)
    ax.set_title(f"{title}\naccuracy {100 * acc:.1f}% (row-normalized)", fontsize=10)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    return _save(fig, out)


def stratified_sample(y: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of ``n`` items with each label's share of ``y`` (largest remainders; fixed seed)."""
    rng = np.random.default_rng(seed)
    labels, counts = np.unique(y, return_counts=True)
    quota = counts * n / len(y)
    take = np.floor(quota).astype(int)
    take[np.argsort(-(quota - take), kind="stable")[: n - take.sum()]] += 1
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:k] for c, k in zip(labels, take)]))


def tsne_plot(
    x: np.ndarray,
    y: np.ndarray,
    classes: list[str],
    title: str,
    out: Path,
    max_points: int = 1000,
    seed: int = 0,
    max_iter: int = 500,
) -> Optional[Path]:
    """t-SNE (van der Maaten & Hinton 2008; scikit-learn, Barnes-Hut) of a stratified sample of at most
    ``max_points`` test embeddings, standardized and PCA-reduced to 50 dimensions, coloured by label."""
    from sklearn.manifold import TSNE

    if len(x) < 5:
        return None
    if len(x) > max_points:
        idx = stratified_sample(np.asarray(y), max_points, seed)
        x, y = x[idx], y[idx]
    x = np.asarray(x, dtype=np.float64)
    x = (x - x.mean(0)) / (x.std(0) + 1e-8)
    if x.shape[1] > 50:  # PCA to 50 dimensions first (standard practice, and much faster)
        u, s, _ = np.linalg.svd(x - x.mean(0), full_matrices=False)
        x = u[:, :50] * s[:50]
    perplexity = float(min(30, max(2, (len(x) - 1) / 3)))
    emb = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed, max_iter=max_iter).fit_transform(x)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 5.6))
    n = len(classes)
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20" if n <= 20 else "turbo")
    for c in np.unique(y):
        m = y == c
        color = cmap(int(c) % 20) if n <= 20 else cmap(int(c) / max(n - 1, 1))
        ax.scatter(emb[m, 0], emb[m, 1], s=6, color=color, label=classes[int(c)] if n <= 20 else None, alpha=0.8)
    if n <= 20:
        ax.legend(markerscale=2.5, fontsize=7, loc="best", frameon=False, ncol=1 if n <= 10 else 2)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{title}\nt-SNE of {len(x)} test embeddings", fontsize=10)
    return _save(fig, out)


def summary_chart(results: dict, out: Path) -> Optional[Path]:
    """All tasks side by side: model and baselines grouped per task."""
    systems = systems_of(results)
    keys = list(results["tasks"])
    if len(keys) < 2:
        return None
    plt = _plt()
    width = 0.8 / len(systems)
    fig, ax = plt.subplots(figsize=(2 + 1.4 * len(keys) * max(1, len(systems) / 2), 3.8))
    xs = np.arange(len(keys))
    for i, (_, label, entries) in enumerate(systems):
        m = [100 * entries[k]["mean"] if k in entries and entries[k].get("mean") is not None else np.nan for k in keys]
        s = [100 * (entries[k].get("std") or 0) if k in entries else 0 for k in keys]
        ax.bar(xs + (i - (len(systems) - 1) / 2) * width, m, width, yerr=s, capsize=3, label=label, color=f"C{i}")
    ax.set_xticks(xs, keys, rotation=20, fontsize=8)
    ax.set_ylabel("score (%)")
    ax.set_ylim(0, 122)
    ax.set_yticks(range(0, 101, 20))
    ax.legend(fontsize=8, loc="upper center", ncol=len(systems), frameon=False)
    ax.set_title(f"{results['name']}: {results['checkpoint']}", fontsize=10)
    return _save(fig, out)


def finetune_curves(results: dict, key: str, out: Path) -> Optional[Path]:
    """Fine-tuning curves of one results row: per system, the training loss and the validation score per epoch,
    one line per seed (and fold), the selected epoch marked."""
    systems = [(label, e[key]) for _, label, e in systems_of(results) if e.get(key, {}).get("curves")]
    if not systems:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for i, (label, e) in enumerate(systems):
        for j, c in enumerate(e["curves"]):
            epochs = np.arange(1, len(c["train_loss"]) + 1)
            kw = {"color": f"C{i}", "alpha": 0.8, "lw": 1.2, "label": label if j == 0 else None}
            axes[0].plot(epochs, c["train_loss"], **kw)
            axes[1].plot(epochs, 100 * np.asarray(c["valid"], dtype=float), **kw)
            best = int(e["best_epochs"][j])  # the tested epoch (the best, or the last with select_epoch: last)
            axes[1].plot(best + 1, 100 * c["valid"][best], "o", color=f"C{i}", ms=4)
    axes[0].set_ylabel("training loss (epoch mean)")
    axes[1].set_ylabel(f"validation {systems[0][1].get('metric')} (%)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8, frameon=False)
    runs = len(systems[0][1]["curves"])
    fig.suptitle(f"{key}: fine-tuning, {runs} run(s) per system (dot: the epoch kept for the test)", fontsize=10)
    return _save(fig, out)


def eval_plots(results: dict, artifacts: dict, folder: Path, cfg=None, progress: bool = True) -> list[Path]:
    from tqdm.auto import tqdm

    folder = Path(folder)
    made: list[Path] = []
    keys = list(results["tasks"])
    for key in keys:
        p = bar_chart(results, key, folder / f"{safe_name(key)}_bars.png")
        if p:
            made.append(p)
        p = finetune_curves(results, key, folder / f"{safe_name(key)}_curves.png")
        if p:
            made.append(p)
    p = summary_chart(results, folder / "summary.png")
    if p:
        made.append(p)
    label = "random init" if results.get("checkpoint_info", {}).get("kind") == "random" else "model"
    for task, art in tqdm(list(artifacts.items()), desc="plots", unit="task", disable=not progress, leave=False):
        if (cfg is None or cfg.confusion) and art.get("confusion") is not None:
            made.append(
                confusion_plot(
                    art["confusion"], art["classes"], f"{task}: {label}", folder / f"{safe_name(task)}_confusion.png"
                )
            )
        if (cfg is None or cfg.tsne) and not art.get("multi_label") and art.get("tsne_x") is not None:
            p = tsne_plot(
                art["tsne_x"],
                art["tsne_y"],
                art["classes"],
                f"{task}: {label}",
                folder / f"{safe_name(task)}_tsne.png",
                max_points=cfg.tsne_points if cfg else 1000,
                max_iter=cfg.tsne_iterations if cfg else 500,
            )
            if p:
                made.append(p)
    return made


def replot_eval(folder: str | Path) -> list[Path]:
    """Bar charts again from an evaluation folder's results.json."""
    import json

    folder = Path(folder)
    results = json.loads((folder / "results.json").read_text())
    made = [
        p for key in results["tasks"] if (p := bar_chart(results, key, folder / "plots" / f"{safe_name(key)}_bars.png"))
    ]
    p = summary_chart(results, folder / "plots" / "summary.png")
    return made + ([p] if p else [])
