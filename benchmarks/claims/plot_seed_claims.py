"""The BYOL paper's robustness figures redrawn from our runs (issue 34), beside the paper's numbers.

- ``seed_claims_augmentations.png``: BYOL Fig. 3b / App. F.3 Table 17 — top-1 with all augmentations, without colour
  distortion and with crops only, BYOL vs SimCLR: the paper (ImageNet, linear top-1) and ours (CIFAR-10 20k subset at
  the ``byol_cifar10_cpu.yaml`` size, linear probe, mean ± std over pretraining seeds, each seed a dot).
- ``seed_claims_target.png``: BYOL Table 5 — top-1 against the target decay rate τ_base and without a predictor
  (drawn once any of those runs exists).

Reads ``benchmarks/results/validity_image.jsonl`` through ``validity_verdicts.py`` (same run keys); writes the PNGs
to ``benchmarks/results`` (``--out`` to change).

    python benchmarks/claims/plot_seed_claims.py
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import claim_catalog as cc  # noqa: E402
import validity_verdicts as vv  # noqa: E402

# BYOL App. F.3 Table 17 (ImageNet linear top-1 after 300 epochs): all / no colour / crop only
PAPER_AUGMENTATIONS = {"BYOL": (72.5, 63.4, 59.4), "SimCLR": (67.9, 45.7, 40.3)}
AUGMENTATION_SETS = (("all", ()), ("no colour", cc.NO_COLOUR), ("crop only", cc.CROP_ONLY))
# BYOL Table 5a / 5b: top-1 per τ_base, and without a predictor (the recipe's τ_base is 0.97: not in the paper)
PAPER_TAU = {"0 (constant)": 0.3, "0.9": 68.4, "0.99": 72.5, "0.999": 69.8, "1": 18.8, "no predictor": 0.2}
TAU_POINTS = (
    ("0 (constant)", " ".join(cc.TAU_0_CONSTANT)),  # Table 5a's †: τ = 0 all along, not rising under the cosine
    ("0.9", "ema.tau_base=0.9"),
    ("0.97", None),  # byol_cifar10_cpu.yaml's own τ_base
    ("0.99", "ema.tau_base=0.99"),
    ("0.999", "ema.tau_base=0.999"),
    ("1", "ema.tau_base=1.0"),
    ("no predictor", "model.predictor=null"),
)
COLOURS = {"BYOL": "tab:blue", "SimCLR": "tab:orange"}


def _accuracies(rows: list[dict]) -> list[float]:
    return [100 * v for v in vv.values(rows, "linear")]


def _bars(ax, labels: list[str], series: dict[str, list], ylabel: str, title: str):
    """Grouped bars: one group per label, one bar per series (a value, or mean ± std with the seeds as dots)."""
    width = 0.8 / len(series)
    for k, (name, vals) in enumerate(series.items()):
        xs = [i + (k - (len(series) - 1) / 2) * width for i in range(len(labels))]
        means = [(sum(v) / len(v) if v else float("nan")) if isinstance(v, list) else v for v in vals]
        errs = [vv.mean_std(v)[1] if isinstance(v, list) and len(v) > 1 else 0.0 for v in vals]
        spread = errs if any(errs) else None
        ax.bar(xs, means, width, yerr=spread, capsize=3, color=COLOURS.get(name), alpha=0.8, label=name)
        for x, v in zip(xs, vals):
            if isinstance(v, list):
                ax.scatter([x] * len(v), v, s=10, color="black", zorder=3)
            if isinstance(v, list) and not v:
                ax.text(x, 1, "no run", rotation=90, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)


def plot_augmentations(runs: dict[str, list[dict]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), sharey=False)
    labels = [name for name, _ in AUGMENTATION_SETS]
    _bars(left, labels, {k: list(v) for k, v in PAPER_AUGMENTATIONS.items()}, "top-1 (%)", "paper: ImageNet")
    ours = {
        name: [_accuracies(runs.get(cc.image_key(variant, *ov), [])) for _, ov in AUGMENTATION_SETS]
        for name, variant in (("BYOL", "byol"), ("SimCLR", "simclr"))
    }
    counts = sorted({len(v) for vals in ours.values() for v in vals})
    seeds = f"{counts[0]}–{counts[-1]}" if counts[0] != counts[-1] else f"{counts[0]}"
    _bars(right, labels, ours, "linear accuracy (%)", f"ours: CIFAR-10 20k × 12 epochs, {seeds} seeds per bar")
    fig.suptitle("Taking augmentations away: BYOL Fig. 3b / Table 17", fontsize=11)
    fig.tight_layout()
    path = out / "seed_claims_augmentations.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_target(runs: dict[str, list[dict]], out: Path) -> Path | None:
    ours = [(label, _accuracies(runs.get(cc.image_key("byol", *([ov] if ov else [])), []))) for label, ov in TAU_POINTS]
    if not any(v for label, v in ours if label != "0.97"):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    xs = list(range(len(TAU_POINTS)))
    taus = len(TAU_POINTS) - 1  # the τ_base points are joined by lines; "no predictor" (last) stands apart
    paper = [PAPER_TAU.get(label, float("nan")) for label, _ in TAU_POINTS]
    ax.plot(xs[:taus], paper[:taus], "s--", color="gray", label="paper: ImageNet top-1 (τ_base 0.97 not run)")
    ax.plot(xs[taus:], paper[taus:], "s", color="gray")
    means = [sum(v) / len(v) if v else float("nan") for _, v in ours]
    errs = [vv.mean_std(v)[1] if len(v) > 1 else 0.0 for _, v in ours]
    style = dict(color=COLOURS["BYOL"], capsize=3)
    ax.errorbar(xs[:taus], means[:taus], yerr=errs[:taus], fmt="o-", label="ours: CIFAR-10 linear", **style)
    ax.errorbar(xs[taus:], means[taus:], yerr=errs[taus:], fmt="o", **style)
    ax.axhline(10, color="gray", linestyle=":", linewidth=1, label="CIFAR-10 chance (ImageNet: 0.1 %)")
    ax.axvline(taus - 0.5, color="lightgray", linewidth=1)
    for x, (_, v) in zip(xs, ours):
        ax.scatter([x] * len(v), v, s=10, color="black", zorder=3)
    ax.set_xticks(list(xs), [label if label == "no predictor" else f"τ_base {label}" for label, _ in TAU_POINTS])
    ax.tick_params(axis="x", labelsize=8)
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Target decay rate and predictor: BYOL Table 5 (each seed a dot)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "seed_claims_target.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=vv.RESULTS, help="folder for the PNGs")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    runs = vv.runs(cc.IMG)
    for path in (plot_augmentations(runs, args.out), plot_target(runs, args.out)):
        if path is not None:
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
