"""What the evaluation plots cost against the evaluation itself, and which t-SNE setting keeps them cheap.

For each eval recipe: one cold ``ssl-toolkit eval`` (fresh embedding cache: decode, embed, linear probes, kNN,
bar charts and confusion matrices, no t-SNE), its plots timed separately; then the t-SNE maps of the same test
embeddings with each candidate setting (points drawn, optimization iterations), and their share of the eval
with those maps. (1500, 1000) was the previous default. Writes
benchmarks/results/bench_eval_plots.{json,md}.

    python benchmarks/speed/bench_eval_plots.py [--recipes fsdd.yaml emodb.yaml cifar10.yaml] [--checkpoint random]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: harness, contenders
from harness import ROOT, environment, write_results

CANDIDATES = [(1500, 1000), (1000, 1000), (1000, 500), (750, 500), (500, 500)]
"""(points, iterations) of the t-SNE maps compared."""


def bench_recipe(name: str, checkpoint: str, folder: Path) -> list[dict]:
    from ssl_toolkit.eval import plots as plotting
    from ssl_toolkit.eval.runner import run_eval
    from ssl_toolkit.eval.schema import load_eval_recipe

    captured: dict = {}
    real = plotting.eval_plots

    def timed(results, artifacts, out, cfg=None, progress=True):
        start = time.perf_counter()
        made = real(results, artifacts, out, cfg, progress=False)
        captured.update(seconds=time.perf_counter() - start, artifacts=artifacts)
        return made

    plotting.eval_plots = timed
    try:
        recipe = load_eval_recipe(
            ROOT / "recipes" / "eval" / name, [f"cache_dir={folder / 'cache'}", "plots.tsne=false"]
        )
        start = time.perf_counter()
        run_eval(recipe, checkpoint, out_dir=folder / "out", quiet=True)
        total = time.perf_counter() - start
    finally:
        plotting.eval_plots = real
    rows = [
        {
            "recipe": name,
            "what": "ssl-toolkit eval, cold, without t-SNE",
            "seconds": round(total, 2),
            "plots_s": round(captured["seconds"], 2),
            "plots_share": round(captured["seconds"] / total, 3),
        }
    ]
    for points, iterations in CANDIDATES:
        seconds = 0.0
        for task, art in captured["artifacts"].items():
            if art.get("tsne_x") is None or art.get("multi_label"):
                continue
            start = time.perf_counter()
            plotting.tsne_plot(
                art["tsne_x"],
                art["tsne_y"],
                art["classes"],
                task,
                folder / f"{task}.png",
                max_points=points,
                max_iter=iterations,
            )
            seconds += time.perf_counter() - start
        rows.append(
            {
                "recipe": name,
                "what": f"t-SNE maps: {points} points, {iterations} iterations",
                "seconds": round(seconds, 2),
                "share_of_eval_plus_maps": round((seconds + captured["seconds"]) / (total + seconds), 3),
            }
        )
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--recipes", nargs="+", default=["fsdd.yaml", "emodb.yaml", "cifar10.yaml"])
    p.add_argument("--checkpoint", default="random")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)
    rows = []
    for name in args.recipes:
        with tempfile.TemporaryDirectory() as tmp:
            rows.extend(bench_recipe(name, args.checkpoint, Path(tmp)))
        print(rows[-len(CANDIDATES) - 1 :], flush=True)
    import torch

    env = environment(torch.device("cpu"))
    columns = ["recipe", "what", "seconds", "plots_s", "plots_share", "share_of_eval_plus_maps"]
    lines = [
        f"# Evaluation plots: cost against the evaluation ({env['device']}, {env['threads']} threads, "
        f"checkpoint {args.checkpoint})",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    lines += ["| " + " | ".join(str(r.get(c, "")) for c in columns) + " |" for r in rows]
    write_results(Path(args.out), "bench_eval_plots", {"environment": env, "rows": rows}, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
