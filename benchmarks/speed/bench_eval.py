"""Speed and precision of the evaluation runners on this machine.

Measures, on real FSDD clips from data/demo/fsdd_mini (decoded beforehand, 1 s pieces at 16 kHz):
  1. clip embedding throughput (log-mel → pre_norm → AudioNTT2020 d=2048 / AudioNTT2022 d=3072) in fp32
     and under bf16 autocast, and how far the bf16 embeddings are from the fp32 ones (relative L2 error,
     cosine) — the runners embed under bf16 by default;
  2. one linear-evaluation run (EVAR protocol: ≤200 epochs, early stopping) on N × 2048 embeddings;
  3. the weighted kNN (k=200) on 20,000 × 512 features;
  4. whole eval recipes (FSDD digits + speaker, EmoDB): seconds for ``ssl-toolkit eval`` cold (decode, embed,
     3-seed linear probes) and warm (embeddings from the cache: the evaluation alone).

    python benchmarks/speed/bench_eval.py [--device cpu] [--batch 64] [--tasks fsdd.yaml emodb.yaml] \
        [--checkpoint random] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: harness, contenders
import torch  # noqa: E402
from harness import ROOT, environment, sync, write_results

from ssl_toolkit.eval.models import build_encoder, build_frontend, default_audio_frontend  # noqa: E402
from ssl_toolkit.eval.protocols import knn_predict, linear_probe  # noqa: E402
from ssl_toolkit.recipe import import_components  # noqa: E402

DEMO = ROOT / "data" / "demo" / "fsdd_mini"


def _clips(n: int) -> torch.Tensor:
    import csv

    from ssl_toolkit.audio.dataset import load_audio

    rows = list(csv.DictReader(open(DEMO / "metadata.csv")))
    out = np.zeros((n, 16000), dtype=np.float32)
    for i in range(n):
        w = load_audio(DEMO / "recordings" / rows[i % len(rows)]["file_name"], 16000)[:16000]
        out[i, : len(w)] = w
    return torch.from_numpy(out)


def bench_embed(spec: dict, x: torch.Tensor, batch: int, device, reps: int) -> list[dict]:
    encoder = build_encoder(spec, None, "bench", seed=0).to(device)
    frontend = [op.to(device) for op in build_frontend(default_audio_frontend(spec))]
    frontend[1].mean.fill_(-8.0)
    frontend[1].std.fill_(5.0)
    x = x.to(device)
    rows, ref = [], None
    for precision in ("fp32", "bf16"):
        amp = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()

        def run():
            outs = []
            with torch.inference_mode():
                for s in range(0, len(x), batch):
                    y = x[s : s + batch]
                    for op in frontend:
                        y = op(y, None)
                    with amp:
                        outs.append(encoder(y).float())
            return torch.cat(outs)

        run()
        sync(device)
        start = time.perf_counter()
        for _ in range(reps):
            emb = run()
        sync(device)
        sec = (time.perf_counter() - start) / reps
        row = {
            "what": f"embed {spec['name']} d={spec['feature_d']}",
            "precision": precision,
            "clips": len(x),
            "clips_per_s": len(x) / sec,
        }
        if ref is None:
            ref = emb
        else:
            row["rel_l2_error_vs_fp32"] = float((emb - ref).norm() / ref.norm())
            row["min_cosine_vs_fp32"] = float(torch.nn.functional.cosine_similarity(emb, ref).min())
        rows.append(row)
        print(row, file=sys.stderr)
    return rows


def bench_linear(n: int, dim: int, classes: int) -> dict:
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(classes, dim))
    y = rng.integers(0, classes, n)
    x = (centres[y] + 3 * rng.normal(size=(n, dim))).astype(np.float32)
    a, b = int(0.7 * n), int(0.8 * n)
    linear_probe(x[:50], y[:50], x[50:60], y[50:60], x[60:70], y[60:70], num_classes=classes, epochs=2)  # warm-up
    start = time.perf_counter()
    res = linear_probe(x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:], num_classes=classes, seed=0)
    sec = time.perf_counter() - start
    return {
        "what": f"linear eval run N={n} D={dim} C={classes}",
        "seconds": sec,
        "epochs_run": res.epochs_run,
        "test_accuracy": res.test_score,
    }


def bench_knn(n_train: int, n_test: int, dim: int, classes: int, device) -> dict:
    rng = np.random.default_rng(0)
    xtr = rng.normal(size=(n_train, dim)).astype(np.float32)
    ytr = rng.integers(0, classes, n_train)
    xte = rng.normal(size=(n_test, dim)).astype(np.float32)
    start = time.perf_counter()
    knn_predict(xtr, ytr, xte, classes, k=200, temperature=0.1, device=device)
    return {
        "what": f"weighted kNN k=200, {n_train} train × {n_test} test, D={dim}",
        "seconds": time.perf_counter() - start,
    }


def bench_tasks(recipe_name: str, checkpoint: str, cache_dir: Path) -> dict:
    """Seconds for ``ssl-toolkit eval`` of one eval recipe end to end: a cold run (decode + embed + linear
    probe over 3 seeds, embeddings written to an empty cache) and a warm rerun (embeddings from the cache,
    so its time is the evaluation alone); embedding ≈ cold − warm."""
    from ssl_toolkit.eval.runner import run_eval
    from ssl_toolkit.eval.schema import load_eval_recipe

    recipe = load_eval_recipe(
        ROOT / "recipes" / "eval" / recipe_name,
        ["baselines=[]", "plots.enabled=false", "cache=true", f"cache_dir={cache_dir}"],
    )
    times = []
    for _ in range(2):
        start = time.perf_counter()
        res = run_eval(recipe, checkpoint, out_dir=cache_dir / "out", quiet=True)
        times.append(time.perf_counter() - start)
    tasks = {k: f"{100 * e['mean']:.1f} ± {100 * e['std']:.1f}" for k, e in res["tasks"].items()}
    return {
        "what": f"ssl-toolkit eval {recipe_name} ({', '.join(tasks)}), checkpoint {checkpoint}",
        "cold_s": times[0],
        "warm_s": times[1],
        "seconds": times[0],
        "scores": tasks,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--clips", type=int, default=256)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument(
        "--tasks",
        nargs="*",
        default=["fsdd.yaml", "emodb.yaml"],
        help="eval recipes timed end to end (they need ../shared/data); none: skip",
    )
    p.add_argument("--checkpoint", default="random", help="what the timed eval recipes evaluate")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)
    import_components()
    device = torch.device(args.device)
    x = _clips(args.clips)
    rows = []
    rows += bench_embed({"name": "audiontt2020", "n_mels": 64, "feature_d": 2048}, x, args.batch, device, args.reps)
    rows += bench_embed(
        {"name": "audiontt2022", "n_mels": 64, "feature_d": 3072, "mlp_hidden_d": 2048},
        x,
        args.batch,
        device,
        args.reps,
    )
    rows.append(bench_linear(2000, 2048, 10))
    rows.append(bench_knn(20000, 5000, 512, 10, device))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tasks:
            rows.append(bench_tasks(name, args.checkpoint, Path(tmp) / name))
            print(rows[-1], file=sys.stderr)
    env = environment(device)
    lines = [
        f"# Evaluation runners ({env['device']}, {env['threads']} threads, torch {env['torch']}, "
        f"load average {env['load_average_1_5_15'][0]} at the end)",
        "",
        "| what | precision | clips / s | bf16 rel. L2 error | bf16 min cosine | seconds |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['what']} | {r.get('precision', '')} | {r['clips_per_s']:.1f} |"
            if "clips_per_s" in r
            else f"| {r['what']} | | |"
        )
        if "clips_per_s" in r:
            lines[-1] += (
                f" {r['rel_l2_error_vs_fp32']:.4f} | {r['min_cosine_vs_fp32']:.5f} |"
                if "rel_l2_error_vs_fp32" in r
                else " | |"
            ) + " |"
        elif "cold_s" in r:
            lines[-1] += f" | | {r['cold_s']:.1f} cold (embed + evaluate), {r['warm_s']:.1f} warm (evaluate) |"
        else:
            lines[-1] += f" | | {r['seconds']:.2f} |"
    write_results(args.out, "bench_eval", {"env": env, "results": rows}, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
