"""Fine-tuning and few labels (issue 33): BYOL's semi-supervised claim and BYOL-A fine-tuned, at the CPU size.

Pretraining, 3 seeds each (the run folders are shared with the other benchmarks, so a checkpoint is trained once):

- image: ``recipes/image/byol_cifar10_cpu.yaml`` (20k CIFAR images × 12 epochs, fixed steps), then
  ``recipes/eval/cifar10_finetune.yaml``: 1 % and 10 % of the labels, BYOL fine-tuned vs random init fine-tuned
  (= supervised from scratch) vs the frozen linear probe on the same labels;
- audio: ``byola_cpu_8min.yaml`` at 320 fixed steps (bench_audio_budget.py's ``abl_full`` lever, so the run does
  not depend on the machine's speed), then ``emodb_finetune.yaml`` (100 % / 15 %) and ``fsdd_finetune.yaml``
  (100 % / 2 %).

The eval seed is the pretraining seed, so fine-tuning draws differ per pretraining seed; one fine-tuning run per
system and seed (the recipes' ``finetune.runs: 1``): mean ± std over the 3 pretraining seeds.

    python benchmarks/claims/bench_finetune.py --claim image --seeds 0 1 2
    python benchmarks/claims/bench_finetune.py --claim audio --seeds 0 1 2
    python benchmarks/claims/bench_finetune.py --sweep image --lrs 0.03 0.1 0.3    # lr on held-out training images
    python benchmarks/claims/bench_finetune.py --apply-sweep image                 # the best lr into the recipes
    python benchmarks/claims/bench_finetune.py --table

Each finished (claim, seed) appends lines to ``benchmarks/results/finetune_claims.jsonl`` — one per results row and
system: ``{"key": "<row> <system>", "seed", "score", "runs", "elapsed_s", "n_train", ...}`` — which
``validity_verdicts.py`` reads; a rerun skips what is logged and resumes a pretraining run from its checkpoint.
``--sweep`` logs the best validation score of each lr (held-out training items: never the test split) to
``finetune_lr_sweep.jsonl``; ``--apply-sweep`` writes the lr with the best validation accuracy over all held-out
items, per task and system, into the eval recipes (``finetune.lr``; ``finetune.baseline_lr`` for random init), so
the claim runs the recipes as shipped. ``--table`` writes ``finetune_claims.md`` (scores and the time of each protocol).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "benchmarks" / "claims")]

from harness import train_or_reuse  # noqa: E402
from jsonl_log import append_jsonl, read_jsonl  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
CLAIMS_FILE = RESULTS / "finetune_claims.jsonl"
SWEEP_FILE = RESULTS / "finetune_lr_sweep.jsonl"
SYSTEMS = ("byol", "random")  # the fine-tuned systems: the checkpoint and random init
COMMON = ["trainer.progress=false", "trainer.tensorboard=false", "device=cpu"]
CLAIMS = {
    "image": {
        "recipe": "recipes/image/byol_cifar10_cpu.yaml",
        "overrides": ["trainer.max_minutes=null"],
        "run": "runs/bench_variants-image-full/runs/byol_cifar10_cpu-s{seed}",
        "evals": ["recipes/eval/cifar10_finetune.yaml"],
    },
    "audio": {
        "recipe": "recipes/audio/byola_cpu_8min.yaml",
        "overrides": ["trainer.max_minutes=null", "trainer.max_steps=320"],
        "run": "runs/audio_budget/abl_full-s{seed}",
        "evals": ["recipes/eval/emodb_finetune.yaml", "recipes/eval/fsdd_finetune.yaml"],
    },
}


def pretrained(claim: str, seed: int) -> Path:
    """The pretraining run of ``claim`` and ``seed``, trained (or resumed) when it has no encoder yet."""
    from ssl_toolkit.recipe import load_recipe

    c = CLAIMS[claim]
    run_dir = ROOT / c["run"].format(seed=seed)
    train_or_reuse(load_recipe(ROOT / c["recipe"], [*COMMON, f"seed={seed}", *c["overrides"]]), run_dir)
    return run_dir


def evaluate(claim: str, seed: int, run_dir: Path, eval_path: str, extra: list[str] = (), tag: str = "") -> dict:
    from ssl_toolkit.eval.runner import run_eval
    from ssl_toolkit.eval.schema import load_eval_recipe

    recipe = load_eval_recipe(ROOT / eval_path, ["device=cpu", f"seed={seed}", *extra])
    out = ROOT / "runs" / "bench_finetune" / f"{claim}-s{seed}{tag}" / Path(eval_path).stem
    return run_eval(recipe, str(run_dir), out_dir=out, quiet=True)


def claim_evals(claim: str) -> list[tuple[str, object]]:
    """(path, parsed eval recipe without file checks) of each of the claim's eval recipes."""
    from ssl_toolkit.eval.schema import load_eval_recipe

    return [(path, load_eval_recipe(ROOT / path, check_files=False)) for path in CLAIMS[claim]["evals"]]


def row_keys(claim: str) -> set[str]:
    """The ``key`` of every line a claim's runs log (its eval recipes' results keys × systems)."""
    from ssl_toolkit.eval.task_runner import result_key

    keys = set()
    for _, recipe in claim_evals(claim):
        for t in recipe.parsed_tasks:
            for p in t.protocols:
                for f in t.label_fraction:
                    keys |= {
                        f"{result_key(t.name, t.protocols, p, f)} {s}"
                        for s in ["byol", *recipe.baselines]
                        if not (s == "logmel" and p == "finetune")
                    }
    return keys


def rows_of(claim: str, seed: int, results: dict) -> list[dict]:
    systems = {"byol": results["tasks"], **{k: v["tasks"] for k, v in results["baselines"].items()}}
    rows = []
    for system, entries in systems.items():
        for key, e in entries.items():
            rows.append(
                {
                    "key": f"{key} {system}",
                    "claim": claim,
                    "seed": seed,
                    "score": e["mean"],
                    "runs": e["runs"],
                    "protocol": e["protocol"],
                    "label_fraction": e.get("label_fraction", 1.0),
                    "n_train": e["n_train"],
                    "n_valid": e["n_valid"],
                    "n_test": e["n_test"],
                    "lr": e.get("lr"),
                    "elapsed_s": e.get("elapsed_s"),
                    "embed_s": e.get("embed_s"),
                    "best_epochs": e.get("best_epochs"),
                }
            )
    return rows


def run_claim(claim: str, seeds: list[int]) -> None:
    done = {(r["claim"], r["seed"]) for r in read_jsonl(CLAIMS_FILE)}
    for seed in seeds:
        if (claim, seed) in done:
            print(f"{claim} seed {seed}: logged, skipped", flush=True)
            continue
        t0 = time.perf_counter()
        run_dir = pretrained(claim, seed)
        rows = []
        for path in CLAIMS[claim]["evals"]:
            rows += rows_of(claim, seed, evaluate(claim, seed, run_dir, path, ["plots.tsne=false"]))
        append_jsonl(CLAIMS_FILE, rows)
        print(f"{claim} seed {seed}: {len(rows)} rows in {time.perf_counter() - t0:.0f} s", flush=True)
        for r in rows:
            print(f"  {r['key']:<40} {100 * r['score']:.2f}  ({r['elapsed_s']} s)", flush=True)


def run_sweep(claim: str, lrs: list[float], seed: int = 0) -> None:
    """Fine-tuning only, at each lr: the best validation score per fraction and system (held-out items)."""
    done = {(r["claim"], r["lr"], task_of(r["key"])) for r in read_jsonl(SWEEP_FILE)}
    run_dir = pretrained(claim, seed)
    for lr in lrs:
        for path, recipe in claim_evals(claim):
            tasks = [t.name for t in recipe.parsed_tasks]
            if all((claim, lr, t) in done for t in tasks):  # an interrupted sweep resumes per eval recipe
                continue
            t0 = time.perf_counter()
            n_tasks = len(tasks)
            extra = [f"finetune.lr={lr}", f"finetune.baseline_lr={lr}", "plots.enabled=false", "baselines=[random]"]
            extra += [f"tasks.{i}.protocols=[finetune]" for i in range(n_tasks)]
            res = evaluate(claim, seed, run_dir, path, extra, tag=f"-sweep-lr{lr}")
            systems = {"byol": res["tasks"], **{k: v["tasks"] for k, v in res["baselines"].items()}}
            rows = [
                {
                    "claim": claim,
                    "lr": lr,
                    "seed": seed,
                    "key": f"{key} {system}",
                    "valid": [max(c["valid"]) for c in e["curves"]],
                    "valid_curves": [c["valid"] for c in e["curves"]],
                    "n_valid": e["n_valid"],
                    "best_epochs": e["best_epochs"],
                    "elapsed_s": e["elapsed_s"],
                }
                for system, entries in systems.items()
                for key, e in entries.items()
            ]
            append_jsonl(SWEEP_FILE, rows)
            print(
                f"lr {lr} ({time.perf_counter() - t0:.0f} s): "
                + ", ".join(f"{r['key']} valid {100 * sum(r['valid']) / len(r['valid']):.1f}" for r in rows),
                flush=True,
            )


def task_of(key: str) -> str:
    """The task of a logged row key ``<task>[/<protocol>][@<p>%] <system>``."""
    return key.rsplit(" ", 1)[0].split("@")[0].split("/")[0]


def pooled_valid(claim: str) -> dict[tuple[str, str], dict[float, float]]:
    """{(task, system): {lr: validation accuracy over all held-out items of every label fraction}} at the epoch the
    claim's eval recipe tests (``finetune.select_epoch``: the best, or the last): each item counts once, so the 20
    items of a 1 % split do not weigh as much as the 200 of a 10 % one."""
    last = {
        t.name: recipe.finetune.select_epoch == "last" for _, recipe in claim_evals(claim) for t in recipe.parsed_tasks
    }
    hits: dict[tuple[str, str], dict[float, list[float]]] = {}
    for r in read_jsonl(SWEEP_FILE):
        if r["claim"] == claim:
            task, system = task_of(r["key"]), r["key"].rsplit(" ", 1)[1]
            scores = [c[-1] for c in r["valid_curves"]] if last.get(task) else r["valid"]
            h = hits.setdefault((task, system), {}).setdefault(r["lr"], [0.0, 0.0])
            h[0] += r["n_valid"] * sum(scores) / len(scores)
            h[1] += r["n_valid"]
    return {k: {lr: h[0] / h[1] for lr, h in sorted(by_lr.items())} for k, by_lr in hits.items()}


def chosen_lrs(claim: str) -> dict[tuple[str, str], float]:
    """The lr with the best pooled validation accuracy per task and system (a tie: the smaller lr): the eval
    recipe's ``finetune.lr`` for the pretrained encoder, ``finetune.baseline_lr`` for random init."""
    return {k: max(by_lr, key=lambda lr: (round(by_lr[lr], 9), -lr)) for k, by_lr in pooled_valid(claim).items()}


def recipe_lrs(claim: str) -> dict[tuple[str, str], float]:
    """{(task, system): lr} as the claim's eval recipes set them."""
    from ssl_toolkit.eval.task_runner import finetune_config

    out = {}
    for _, recipe in claim_evals(claim):
        for t in recipe.parsed_tasks:
            out |= {(t.name, s): finetune_config(recipe, "random" if s == "random" else "model").lr for s in SYSTEMS}
    return out


def set_finetune_keys(text: str, values: dict[str, float], where: str) -> str:
    """``text`` (an eval recipe) with ``values`` written into its top-level ``finetune:`` block, in order (a missing
    key goes under the one before it, or first in the block); nothing outside the block changes."""
    lines = text.split("\n")
    start = next((i for i, line in enumerate(lines) if line.rstrip() == "finetune:"), None)
    if start is None:
        raise SystemExit(f"{where}: no top-level 'finetune:' block to write the swept lr into")
    end = next((i for i in range(start + 1, len(lines)) if lines[i] and not lines[i].startswith(" ")), len(lines))
    after = start
    for key, value in values.items():
        line = f"  {key}: {f'{value:.10f}'.rstrip('0').rstrip('.')}"
        at = next((i for i in range(start + 1, end) if lines[i].startswith(f"  {key}:")), None)
        if at is None:
            at, end = after + 1, end + 1
            lines.insert(at, line)
        else:
            lines[at] = line
        after = at
    return "\n".join(lines)


def apply_sweep(claim: str) -> None:
    """Write the swept choice into the claim's eval recipes (``finetune.lr``, ``finetune.baseline_lr``)."""
    chosen = chosen_lrs(claim)
    for path, recipe in claim_evals(claim):
        tasks = [t.name for t in recipe.parsed_tasks]
        picks = {k: v for k, v in chosen.items() if k[0] in tasks}
        if not picks:
            continue
        values = {"lr": picks.get((tasks[0], "byol")), "baseline_lr": picks.get((tasks[0], "random"))}
        if any(
            picks.get((t, s)) != values[key] for t in tasks for s, key in (("byol", "lr"), ("random", "baseline_lr"))
        ):
            raise SystemExit(f"{path}: its tasks swept to different lrs ({picks}); one recipe holds one lr")
        values = {k: v for k, v in values.items() if v is not None}
        (ROOT / path).write_text(set_finetune_keys((ROOT / path).read_text(), values, path))
        print(f"{path}: " + ", ".join(f"finetune.{k} {v}" for k, v in values.items()))


def table() -> Path:
    from validity_verdicts import mean_std

    by_key: dict[str, list[dict]] = {}
    for r in read_jsonl(CLAIMS_FILE):
        by_key.setdefault(r["key"], []).append(r)
    lines = [
        "# Fine-tuning and few labels (issue 33)",
        "",
        "`python benchmarks/claims/bench_finetune.py` — mean ± std over pretraining seeds (one fine-tuning run per "
        "seed); time: the protocol's own seconds per run on 2 CPU cores, the median over seeds (frozen protocols: "
        "plus the embedding, once). Fine-tuning lr per system from the sweep below.",
        "",
        "<!-- --8<-- [start:table] -->",
        "| row | system | lr | score (%) | seeds | train / valid / test | time per run (s) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for key, rows in by_key.items():
        row, system = key.rsplit(" ", 1)
        m, s = mean_std([r["score"] for r in rows])
        t = statistics.median((r["elapsed_s"] or 0) for r in rows)  # a run slowed by a neighbour weighs less
        lines.append(
            f"| {row} | {system} | {rows[0].get('lr') or '–'} | {100 * m:.1f} ± {100 * s:.1f} | {len(rows)} | "
            f"{rows[0]['n_train']} / {rows[0]['n_valid']} / {rows[0]['n_test']} | {t:.0f} |"
        )
    lines.append("<!-- --8<-- [end:table] -->")  # docs/evaluation.md includes the table
    sweep = read_jsonl(SWEEP_FILE)
    if sweep:
        lines += [
            "",
            "## lr sweep (validation accuracy on held-out training items at the best epoch; never the test split)",
            "",
            "| claim | lr | row | valid (%) | time (s) |",
            "|---|---:|---|---:|---:|",
        ]
        lines += [
            f"| {r['claim']} | {r['lr']} | {r['key']} | {100 * sum(r['valid']) / len(r['valid']):.1f} | "
            f"{r['elapsed_s']:.0f} |"
            for r in sweep
        ]
        for claim in sorted({r["claim"] for r in sweep}):
            pooled, chosen = pooled_valid(claim), chosen_lrs(claim)
            lrs = sorted({lr for by_lr in pooled.values() for lr in by_lr})
            lines += [
                "",
                f"{claim}: validation accuracy over every held-out item of all fractions (each item counts once) "
                "per lr, and the lr chosen per task and system (`--apply-sweep` writes it into the eval recipes):",
                "",
                "| task | system | " + " | ".join(f"lr {lr}" for lr in lrs) + " | chosen |",
                "|---|---|" + "---:|" * (len(lrs) + 1),
            ]
            lines += [
                f"| {task} | {system} | "
                + " | ".join(f"{100 * by_lr[lr]:.1f}" if lr in by_lr else "–" for lr in lrs)
                + f" | {chosen[task, system]} |"
                for (task, system), by_lr in pooled.items()
            ]
    out = RESULTS / "finetune_claims.md"
    out.write_text("\n".join(lines) + "\n")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--claim", choices=sorted(CLAIMS))
    ap.add_argument("--sweep", choices=sorted(CLAIMS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--lrs", type=float, nargs="+", default=[0.03, 0.1, 0.3])
    ap.add_argument("--apply-sweep", choices=sorted(CLAIMS), help="write the swept lr choice into the eval recipes")
    ap.add_argument("--table", action="store_true")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(2)
    if args.sweep:
        run_sweep(args.sweep, args.lrs)
    if args.apply_sweep:
        apply_sweep(args.apply_sweep)
    if args.claim:
        run_claim(args.claim, args.seeds)
    print(table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
