"""The whole training loop of two versions of this code, alternated in one run: is a change free?

For each round and each recipe, ``ssl-toolkit train`` runs once with the code and recipe files of ``--old``
(a git revision, checked out into a temporary worktree) and once with the working tree's, in alternating
order, each a fresh process from the repository root with the same overrides (plus ``--new-set`` ones for the
working tree, e.g. ``trainer.hooks=[]`` to time the loop without the monitors it added). The figure is the
median samples/s over the logged windows after the first (the first holds start-up and warm-up).
Writes results/bench_code_ab.json and .md.

    python benchmarks/speed/bench_code_ab.py --old 631147f --rounds 3
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: harness, contenders
import torch  # noqa: E402
from harness import ROOT, environment, write_results

RECIPES = {  # name: (recipe, steps, needs ../shared)
    "image narrow ResNet-18 bf16 (byol_cifar10_cpu)": ("recipes/image/byol_cifar10_cpu.yaml", 60, True),
    "BYOL-A d=512 bf16 (byola_fsdd)": ("recipes/audio/byola_fsdd.yaml", 45, False),
}


def run_once(tree: Path, recipe: str, steps: int, out: Path, extra: list[str]) -> float:
    cmd = [
        sys.executable,
        "-P",
        "-m",
        "ssl_toolkit",
        "train",
        str(tree / recipe),
        "--out",
        str(out),
        "--quiet",
        f"trainer.max_steps={steps}",
        "trainer.log_every=5",
        "trainer.max_minutes=null",
        "trainer.tensorboard=false",
        "trainer.progress=false",
        f"trainer.checkpoint_every={10 * steps}",
        *extra,
    ]
    env = {**os.environ, "PYTHONPATH": str(tree)}  # with -P: this tree's ssl_toolkit, whatever is installed
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{tree}: {recipe} failed:\n{done.stderr[-2000:]}")
    with (out / "metrics.csv").open(newline="") as f:
        rates = [float(r["samples_per_s"]) for r in csv.DictReader(f)]
    return statistics.median(rates[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old", required=True, help="git revision of the code to compare with")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--new-set", nargs="*", default=[], help="overrides for the working tree's runs only")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    shared = (ROOT.parent / "shared" / "data").is_dir()
    results = {name: {"old": [], "new": []} for name, (_, _, needs) in RECIPES.items() if shared or not needs}
    with tempfile.TemporaryDirectory() as tmp:
        old_tree = Path(tmp) / "old"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old_tree), args.old],
            check=True,
            capture_output=True,
        )
        try:
            for r in range(args.rounds):
                for name, (recipe, steps, _) in RECIPES.items():
                    if name not in results:
                        continue
                    order = [("old", old_tree), ("new", ROOT)] if r % 2 == 0 else [("new", ROOT), ("old", old_tree)]
                    for label, tree in order:
                        rate = run_once(
                            tree,
                            recipe,
                            steps,
                            Path(tmp) / f"{label}-{r}-{abs(hash(name))}",
                            args.new_set if label == "new" else [],
                        )
                        results[name][label].append(rate)
                        print(f"round {r + 1}: {name}: {label} {rate:.1f} samples/s", flush=True)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old_tree)], capture_output=True
            )
    old_rev = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", args.old], capture_output=True, text=True
    ).stdout.strip()
    lines = [
        f"# Training loop, old ({old_rev}) vs new code, alternated",
        "",
        f"Median samples/s of the logged windows after the first; {args.rounds} rounds, each a fresh "
        f"`ssl-toolkit train` process; 2-core CPU; new-only overrides: {args.new_set or 'none'}.",
        "",
        "| recipe | old (median of rounds) | new (median of rounds) | new / old | rounds old | rounds new |",
        "|---|---|---|---|---|---|",
    ]
    summary = {}
    for name, res in results.items():
        o, n = statistics.median(res["old"]), statistics.median(res["new"])
        summary[name] = {"old": o, "new": n, "ratio": n / o, **res}
        lines.append(
            f"| {name} | {o:.1f} | {n:.1f} | {n / o:.3f} | "
            f"{', '.join(f'{v:.1f}' for v in res['old'])} | {', '.join(f'{v:.1f}' for v in res['new'])} |"
        )
    payload = {
        "old": old_rev,
        "rounds": args.rounds,
        "new_set": args.new_set,
        "results": summary,
        "environment": environment(torch.device("cpu")),
    }
    print(write_results(args.out, "bench_code_ab", payload, lines).read_text())


if __name__ == "__main__":
    main()
