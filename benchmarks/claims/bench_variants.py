"""Compare the paper variants with BYOL on the CPU-sized settings: pretrain each recipe for the same
number of epochs with several seeds, evaluate the frozen encoder with the downstream runner
(``ssl_toolkit.eval``: linear probe + weighted kNN), and write JSON + markdown (mean ± std over seeds).

Groups (``--groups``, default all):
  tribyol        BYOL vs TriBYOL at batch 16 / 32 / 64 / 256 (image only: the paper's small-batch claim)
  predictors     BYOL vs each closed-form predictor (directpred, directcopy, ne, visser, ns, ns2, stiefel), and
                 stiefel in the Edge of Orthogonality paper's setting (raw latents, its best ridge α = 0.3)
  self_labeling  BYOL vs CCSL / CSSL, with the self-labeling diagnostic measured after training (fraction of
                 batch pairs selected and the fraction of those whose labels agree, on training batches)
  norm           BatchNorm vs GroupNorm + weight standardization vs no normalization (collapse expected)
  simsiam        BYOL vs SimSiam
  precision      (not in the default set) BYOL under bf16 autocast vs fp32: the accuracy effect of bf16
The seed papers' claims (issue 34; not in the default set):
  augmentations  BYOL and SimCLR with all views' ops, without colour distortion (jitter + grayscale), and with the
                 crop alone (no flip, colour, solarization): BYOL Fig. 3b / Table 17
  target         BYOL with ema.tau_base 1 (fixed random target), 0.999, 0.99, 0.97 (the recipe's), 0.9 (under the
                 cosine schedule to 1), 0 kept constant (the online network as target: Table 5a's †) and 0 under the
                 cosine schedule, and without a predictor: BYOL Table 5
  batch          BYOL and SimCLR at batch 32 × 4 accumulated micro-batches (the optimizer batch of 128, one target
                 update per optimizer step) vs batch 128: BYOL Fig. 3a / Table 16

    python benchmarks/claims/bench_variants.py                 # the full comparison: hours on a CPU
    python benchmarks/claims/bench_variants.py --size quick    # a smoke-sized version (2,048 images, 2 epochs, 2 seeds)
    python benchmarks/claims/bench_variants.py --size medium   # 5,000 images × 3 epochs, 3 seeds (about 1.5 CPU-hours)
    python benchmarks/claims/bench_variants.py --size quick --modality audio --groups predictors norm
    python benchmarks/claims/bench_variants.py --size medium --shard 0/2 &  # two processes share the runs,
    python benchmarks/claims/bench_variants.py --size medium --shard 1/2    # then one more call without --shard
                                                                     # assembles the table from the run folders
    python benchmarks/claims/bench_variants.py --size full --batches 64 --jsonl benchmarks/results/validity_image.jsonl
                                          # the claims at the 8-minute recipe's size (stop and rerun at will)

Every run is the ordinary trainer on a shipped recipe plus command-line style overrides; runs that are
identical across groups (the BYOL baseline) are trained once per seed. Results go to
``--out`` (default runs/bench_variants-<modality>-<size>): ``results.json``, ``results.md`` and the run folders;
each finished run keeps its result in ``<run>/bench_result.json`` (and, with ``--jsonl``, a line in that file), so
a rerun (or the assembling call after sharded runs) only does what is missing, and a run stopped part-way (killed,
session over) resumes from its last checkpoint.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path[:0] = [str(Path(__file__).resolve().parent), str(ROOT / "benchmarks")]

import torch  # noqa: E402
from claim_catalog import CROP_ONLY, NO_COLOUR, SMALL_BATCH, TAU_0_CONSTANT  # noqa: E402
from harness import finished_with, train_or_reuse  # noqa: E402
from jsonl_log import append_jsonl, read_jsonl  # noqa: E402

PREDICTORS = ("directpred", "directcopy", "ne", "visser", "ns", "ns2", "stiefel")
STIEFEL_PAPER = ["model.predictor.normalize=false", "model.predictor.alpha=0.3"]  # diagnose_stiefel.py
GROUPS = ("tribyol", "predictors", "self_labeling", "norm", "simsiam")  # the variant comparison (default)
EXTRA_GROUPS = ("precision", "augmentations", "target", "batch")
# view-op positions in both branches of byol_cifar10_cpu.yaml and simclr_cifar10_cpu.yaml: crop, flip, jitter,
# grayscale, solarize
TAUS = ("1.0", "0.999", "0.99", "0.9", "0.0")
BATCHES = (16, 32, 64, 256)

SETTINGS = {
    "image": {
        "byol": "recipes/image/byol_cifar10_cpu.yaml",
        "variant": "recipes/variants/image/{}_cifar10_cpu.yaml",
        "eval": "recipes/eval/cifar10.yaml",
        "quick_train": ["data.dataset.limit=2048", "trainer.epochs=2", "trainer.log_every=8"],
        "quick_eval": ["tasks.0.dataset.limit=2000", "linear.epochs=50", "linear.patience=10"],
        "quick_batch": 64,
        "medium_train": ["data.dataset.limit=5000", "trainer.epochs=3", "trainer.log_every=10"],
        "medium_eval": ["tasks.0.dataset.limit=5000"],
        "full_train": ["trainer.max_minutes=null"],  # equal epochs: no wall-clock cap for the slower variants
    },
    "audio": {
        "byol": "recipes/audio/byola_fsdd.yaml",
        "variant": "recipes/variants/audio/{}_fsdd.yaml",
        "eval": "recipes/eval/fsdd_demo.yaml",
        # full size: the digit task of the whole FSDD (1,000 test clips) when ../shared/data/fsdd is there
        "full_eval_recipe": ("recipes/eval/fsdd.yaml", "fsdd_digits", ROOT.parent / "shared" / "data" / "fsdd"),
        "quick_train": ["trainer.epochs=2", "trainer.log_every=2", "views.input.1.n_stats=200"],
        "quick_eval": ["linear.epochs=50", "linear.patience=10"],
        "quick_batch": 32,
        "medium_train": ["trainer.epochs=6", "trainer.log_every=2", "views.input.1.n_stats=200"],
        "medium_eval": [],
    },
}
EVAL_COMMON = ["baselines=[]", "plots.enabled=false", "cache=false", "device=cpu", "linear.runs=1"]


def plan(groups: list[str], modality: str, size: str, batches=BATCHES) -> list[tuple[str, str, str, list[str]]]:
    """(group, label, recipe path, overrides) for every run of one seed."""
    s = SETTINGS[modality]
    v = s["variant"].format
    bs = [f"data.batch_size={s['quick_batch']}"] if size == "quick" else []
    runs = []
    for g in groups:
        if g in ("augmentations", "target", "batch") and modality != "image":
            print(
                f"note: the {g} group is BYOL's ImageNet claim, defined on the image setting; skipped for audio",
                file=sys.stderr,
            )
            continue
        if g == "tribyol":
            if modality != "image":
                print(
                    "note: the TriBYOL batch-size sweep is defined on the image setting; audio runs it at the "
                    "recipe's batch size",
                    file=sys.stderr,
                )
                runs += [(g, "byol", s["byol"], bs), (g, "tribyol", v("tribyol"), bs)]
                continue
            for b in batches:
                runs += [
                    (g, f"byol bs{b}", s["byol"], [f"data.batch_size={b}"]),
                    (g, f"tribyol bs{b}", v("tribyol"), [f"data.batch_size={b}"]),
                ]
        elif g == "predictors":
            runs += [
                (g, "byol (MLP predictor)", s["byol"], bs),
                (g, "byol (linear predictor)", s["byol"], [*bs, "model.predictor.num_layers=1"]),
            ]
            runs += [(g, h, v(h), bs) for h in PREDICTORS]
            runs.append((g, "stiefel (raw latents, alpha 0.3)", v("stiefel"), [*bs, *STIEFEL_PAPER]))
        elif g == "self_labeling":
            runs += [(g, "byol", s["byol"], bs), (g, "ccsl", v("ccsl"), bs), (g, "cssl", v("cssl"), bs)]
        elif g == "norm":
            runs += [(g, "bn", s["byol"], bs), (g, "gn_ws", v("gn_ws"), bs), (g, "none", v("nonorm"), bs)]
        elif g == "simsiam":
            runs += [(g, "byol", s["byol"], bs), (g, "simsiam", v("simsiam"), bs)]
        elif g == "augmentations":
            for name, recipe in (("byol", s["byol"]), ("simclr", v("simclr"))):
                runs += [
                    (g, name, recipe, bs),
                    (g, f"{name} no colour", recipe, [*bs, *NO_COLOUR]),
                    (g, f"{name} crop only", recipe, [*bs, *CROP_ONLY]),
                ]
        elif g == "target":
            runs += [(g, "byol", s["byol"], bs), (g, "byol no predictor", s["byol"], [*bs, "model.predictor=null"])]
            runs += [(g, f"byol tau_base {t}", s["byol"], [*bs, f"ema.tau_base={t}"]) for t in TAUS]
            runs.append((g, "byol tau 0 constant", s["byol"], [*bs, *TAU_0_CONSTANT]))
        elif g == "batch":
            for name, recipe in (("byol", s["byol"]), ("simclr", v("simclr"))):
                runs += [
                    (g, name, recipe, bs),
                    (g, f"{name} bs32x4", recipe, [*SMALL_BATCH]),
                ]
        elif g == "precision":
            runs += [(g, "bf16 autocast", s["byol"], bs), (g, "fp32", s["byol"], [*bs, "precision=fp32"])]
    return runs


def _last_metrics(run_dir: Path) -> dict:
    from ssl_toolkit.training.metrics import read_metrics

    rows = read_metrics(run_dir)
    last = rows[-1]
    rankme = [float(r["rankme"]) for r in rows if r.get("rankme") not in (None, "")]
    return {
        "loss": float(last["loss"]),
        "collapse": float(last["collapse"]),
        "steps": int(last["step"]),
        "train_s": float(last["elapsed_s"]),
        "collapse_min": min(float(r["collapse"]) for r in rows),
        "rankme": rankme[-1] if rankme else None,
    }


@torch.no_grad()
def self_label_diagnostic(run_dir: Path, n_batches: int = 4, batch_size: int = 128) -> dict:
    """Selected-pair fraction and label agreement of a trained CCSL/CSSL method on training batches
    (the trainer does not pass labels to the method, so this is measured after training), with the
    chance level (the probability that two random training items share a label)."""
    from ssl_toolkit.checkpoint import TrainingState
    from ssl_toolkit.engine.build import build_method
    from ssl_toolkit.recipe import load_recipe
    from ssl_toolkit.registry import DATASETS
    from ssl_toolkit.views import ViewMaker

    recipe = load_recipe(run_dir / "recipe.yaml")
    state = TrainingState.load(run_dir / "checkpoints" / "last.pt")
    method = build_method(recipe)
    method.load_state_dict(state.method)
    views = ViewMaker.from_config(recipe.views)
    views.load_state_dict(state.views)
    method.train()  # as the loss sees them: batch statistics (eval-mode BN running stats can differ a lot early on)
    ds = DATASETS.build(recipe.data.dataset.name, **recipe.data.dataset.params)
    order = torch.randperm(len(ds), generator=torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)
    sel, agree = [], []
    for b in range(n_batches):
        idx = order[b * batch_size : (b + 1) * batch_size].tolist()
        if len(idx) < 2:
            break
        items = [ds[i] for i in idx]
        x = torch.stack([torch.as_tensor(it[0]) for it in items])
        y = torch.tensor([int(it[1]) for it in items])
        out = method(views(x, gen), labels=y)
        sel.append(float(out["sl_selected"]))
        agree.append(float(out["sl_label_agreement"]))
    chance = None
    labels = torch.tensor([int(ds[i][1]) for i in order[:2000].tolist()])
    if (labels >= 0).all():
        p = torch.bincount(labels).double() / len(labels)
        chance = float((p**2).sum())
    finite = [a for a in agree if not math.isnan(a)]
    return {
        "sl_selected": sum(sel) / max(len(sel), 1),
        "sl_label_agreement": sum(finite) / len(finite) if finite else float("nan"),
        "label_agreement_chance": chance,
    }


def eval_recipe(modality: str, size: str):
    """The eval recipe of a modality and size: ``<size>_eval_recipe`` (path, the one task kept, the data it
    needs) where that data exists, else ``eval``; with EVAL_COMMON and ``<size>_eval`` overrides."""
    from ssl_toolkit.eval.schema import validate_eval_tree
    from ssl_toolkit.recipe import load_resolved_tree

    s = SETTINGS[modality]
    path, task = s["eval"], None
    if f"{size}_eval_recipe" in s and s[f"{size}_eval_recipe"][2].is_dir():
        path, task, _ = s[f"{size}_eval_recipe"]
    tree, origins = load_resolved_tree(ROOT / path, [*EVAL_COMMON, *s.get(f"{size}_eval", [])])
    if task:
        tree["tasks"] = [t for t in tree["tasks"] if t["name"] == task]
    return validate_eval_tree(tree, origins)


def train_overrides(modality: str, size: str, seed: int, overrides: list[str]) -> list[str]:
    """Everything a run's recipe is loaded with: the bench's common keys, the size's, the run's own."""
    size_ov = SETTINGS[modality].get(f"{size}_train", [])
    return ["trainer.progress=false", "trainer.tensorboard=false", f"seed={seed}", "device=cpu", *size_ov, *overrides]


def train_and_eval(
    recipe_path: str, overrides: list[str], seed: int, run_dir: Path, modality: str, size: str, label: str
) -> dict:
    from ssl_toolkit.eval.runner import run_eval
    from ssl_toolkit.recipe import load_recipe

    train_ov = train_overrides(modality, size, seed, overrides)
    recipe = load_recipe(ROOT / recipe_path, train_ov)
    saved = run_dir / "bench_result.json"
    if saved.exists() and finished_with(recipe, run_dir):  # its results, once the recipe is the same
        res = json.loads(saved.read_text())
        if res.get("overrides") == train_ov:
            return res
    t0 = time.perf_counter()
    train_or_reuse(recipe, run_dir)
    res = {"recipe": recipe_path, "overrides": train_ov, **_last_metrics(run_dir)}
    ev = run_eval(eval_recipe(modality, size), str(run_dir), out_dir=run_dir / "eval", quiet=True)
    for key, entry in ev["tasks"].items():
        res[entry["protocol"]] = entry["mean"]
    if label in ("ccsl", "cssl"):
        res.update(self_label_diagnostic(run_dir))
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    saved.write_text(json.dumps(res))
    return res


def _config(recipe_path: str, overrides: list[str], seed: int) -> str:
    return f"{Path(recipe_path).stem}{''.join(' ' + o for o in overrides)} seed={seed}"


def _logged(path) -> dict:
    """The runs already appended to a results file, by config (jsonl_log: a last line cut short is not a run)."""
    return {} if path is None else {row["key"]: row["result"] for row in read_jsonl(path)}


def logged_result(
    logged: dict, path, recipe_path: str, overrides: list[str], seed: int, modality: str, size: str
) -> dict | None:
    """The logged result of this run (None: not run yet); a row logged from other settings (another --size) is an
    error, never a result of this size."""
    res = logged.get(_config(recipe_path, overrides, seed))
    if res is not None and res["overrides"] != (want := train_overrides(modality, size, seed, overrides)):
        raise SystemExit(
            f"{path}: {_config(recipe_path, overrides, seed)} was logged from a run with overrides "
            f"{res['overrides']}, --size {size} trains it with {want}; write this size's results to another --jsonl"
        )
    return res


def _append(path, recipe_path: str, overrides: list[str], seed: int, group: str, label: str, res: dict) -> None:
    """One JSON line per finished run: what the issue's results files hold (accuracies as fractions)."""
    if path is None:
        return
    from ssl_toolkit.recipe import load_recipe

    epochs = load_recipe(ROOT / recipe_path, res["overrides"]).trainer.epochs
    row = {
        "key": _config(recipe_path, overrides, seed),
        "group": group,
        "config": label,
        "seed": seed,
        "recipe": recipe_path,
        "overrides": overrides,
        "epochs": epochs,
        "steps": res["steps"],
        "final_loss": res["loss"],
        "final_collapse": res["collapse"],
        "min_collapse": res["collapse_min"],
        "rankme": res.get("rankme"),
        "linear": res.get("linear"),
        "knn": res.get("knn"),
        "units": "fraction",
        "train_s": res["train_s"],
        "wall_s": res["wall_s"],
        "host": platform.node(),
        "finished": datetime.now().isoformat(timespec="seconds"),
        "result": res,
    }
    append_jsonl(path, [row])


def _mean_std(values: list[float]) -> tuple[float, float]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return float("nan"), float("nan")
    m = sum(vals) / len(vals)
    sd = (sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) ** 0.5 if len(vals) > 1 else 0.0
    return m, sd


METRICS = [
    ("linear", "linear acc %", 100),
    ("knn", "kNN acc %", 100),
    ("loss", "final loss", 1),
    ("collapse", "collapse", 1),
    ("sl_selected", "pairs selected %", 100),
    ("sl_label_agreement", "selected pairs same label %", 100),
    ("label_agreement_chance", "same label by chance %", 100),
    ("train_s", "train s", 1),
]


def summarize(runs: list[dict]) -> dict:
    out: dict = {}
    for r in runs:
        out.setdefault(r["group"], {}).setdefault(r["label"], []).append(r)
    summary = {}
    for g, by_label in out.items():
        summary[g] = {}
        for label, rs in by_label.items():
            summary[g][label] = {k: _mean_std([x.get(k) for x in rs]) for k, _, _ in METRICS if any(k in x for x in rs)}
            summary[g][label]["seeds"] = len(rs)
    return summary


def markdown(summary: dict, meta: dict) -> str:
    lines = [
        f"# Variant comparison ({meta['modality']}, size {meta['size']})",
        "",
        f"{meta['created']} · {meta['host']} · torch {meta['torch']} · {meta['threads']} threads · "
        f"seeds {meta['seeds']} · mean ± std over seeds · equal epochs within a group",
        "",
        f"Downstream: {meta['eval']}.",
        "",
    ]
    if meta["size"] == "quick":
        lines += [
            "Quick mode: a training subset and very short pretraining, so accuracies are near the "
            "random-encoder level; this checks the pipeline, it does not rank the methods.",
            "",
        ]
    for g, by_label in summary.items():
        cols = [(k, name, scale) for k, name, scale in METRICS if any(k in v for v in by_label.values())]
        lines += [f"## {g}", "", "| run | " + " | ".join(c[1] for c in cols) + " |", "|---|" + "---|" * len(cols)]
        for label, stats in by_label.items():
            cells = []
            for k, _, scale in cols:
                if k not in stats or math.isnan(stats[k][0]):
                    cells.append("–")
                else:
                    m, sd = stats[k]
                    digits = 1 if scale == 100 or k == "train_s" else 3
                    cells.append(f"{m * scale:.{digits}f} ± {sd * scale:.{digits}f}")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--size",
        choices=("quick", "medium", "full"),
        default="full",
        help="quick: 2,048 images × 2 epochs, short probe, 2 seeds; medium: 5,000 images × 3 epochs "
        "(audio: 6 epochs), 3 seeds; full: the recipes as shipped, 3 seeds",
    )
    ap.add_argument("--shard", default=None, metavar="K/N", help="do only the K-th of N shares of the runs")
    ap.add_argument("--modality", choices=tuple(SETTINGS), default="image")
    ap.add_argument("--groups", nargs="+", choices=GROUPS + EXTRA_GROUPS, default=list(GROUPS))
    ap.add_argument("--seeds", type=int, default=None, help="default 3 (2 with --size quick)")
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: on a shared CPU, 2 OpenMP threads can be many times slower)",
    )
    ap.add_argument(
        "--labels",
        nargs="+",
        default=None,
        metavar="LABEL",
        help="only the runs with these labels (e.g. bn gn_ws of the norm group)",
    )
    ap.add_argument("--batches", type=int, nargs="+", default=list(BATCHES), help="the tribyol group's batch sizes")
    ap.add_argument(
        "--jsonl",
        type=Path,
        default=None,
        help="append one JSON line per finished run (config, seed, epochs, final_collapse, linear, knn "
        "as fractions, ...) to this file; runs already in it are not trained again",
    )
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    one_seed = plan(args.groups, args.modality, args.size, args.batches)
    planned = {label for _, label, _, _ in one_seed}
    if args.labels and set(args.labels) - planned:
        ap.error(f"--labels: {sorted(set(args.labels) - planned)} not among the planned runs' labels {sorted(planned)}")
    torch.set_num_threads(args.threads)
    seeds = args.seeds or (2 if args.size == "quick" else 3)
    out = args.out or ROOT / "runs" / f"bench_variants-{args.modality}-{args.size}"
    shard, n_shards = (int(v) for v in args.shard.split("/")) if args.shard else (0, 1)
    out.mkdir(parents=True, exist_ok=True)
    import ssl_toolkit.components  # noqa: F401

    meta = {
        "modality": args.modality,
        "size": args.size,
        "seeds": seeds,
        "threads": args.threads,
        "groups": args.groups,
        "created": datetime.now().isoformat(timespec="seconds"),
        "host": platform.node(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }
    ev = eval_recipe(args.modality, args.size)
    meta["eval"] = f"`{ev.name}` eval recipe, task(s) {', '.join(t['name'] for t in ev.tasks)}"
    runs, done = [], {}
    todo = [(seed, *p) for seed in range(seeds) for p in one_seed]
    if args.labels:
        todo = [t for t in todo if t[2] in args.labels]
    logged = _logged(args.jsonl)
    keys = list(dict.fromkeys((r, tuple(o), seed) for seed, _, _, r, o in todo))
    for i, (seed, group, label, recipe_path, overrides) in enumerate(todo):
        key = (recipe_path, tuple(overrides), seed)
        if keys.index(key) % n_shards != shard:
            continue
        if key not in done:
            tag = f"{Path(recipe_path).stem}{''.join('-' + o.split('=')[1] for o in overrides)}-s{seed}"
            print(
                f"[{i + 1}/{len(todo)}] {group}: {label} seed {seed} ({recipe_path} {' '.join(overrides)})",
                file=sys.stderr,
                flush=True,
            )
            done[key] = logged_result(logged, args.jsonl, recipe_path, overrides, seed, args.modality, args.size)
            if done[key] is None:
                done[key] = train_and_eval(
                    recipe_path, overrides, seed, out / "runs" / tag, args.modality, args.size, label
                )
                _append(args.jsonl, recipe_path, overrides, seed, group, label, done[key])
            print(
                f"    linear {done[key].get('linear', float('nan')):.4f} "
                f"knn {done[key].get('knn', float('nan')):.4f} "
                f"collapse {done[key]['collapse']:.3f} ({done[key]['wall_s']} s)",
                file=sys.stderr,
                flush=True,
            )
        runs.append({"group": group, "label": label, "seed": seed, **done[key]})
        if n_shards > 1:
            continue
        summary = summarize(runs)
        (out / "results.json").write_text(json.dumps({"meta": meta, "summary": summary, "runs": runs}, indent=1))
        (out / "results.md").write_text(markdown(summary, meta))
    if n_shards == 1:
        print(f"results: {out / 'results.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
