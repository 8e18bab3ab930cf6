"""Where BN-free BYOL (``norm: gn_ws``) collapses (issue 17): the medium size (5,000 CIFAR images × 3 epochs,
seed 0) with GN+WS in the encoder and/or the heads, with a lower lr, a slower target (τ 0.99), zero-initialized
residual branches, heads without the last Linear's bias, and a group rule that keeps at least 4 channels per group
(at width 0.25 the stem and layer1 have 16 channels: 16 groups make them InstanceNorm; PATCHES swaps the rule for
that run only). Each finished case
appends its final and minimum collapse metric, loss and collapse curve to benchmarks/results/gn_ws_diagnostics.jsonl
(run folders in runs/gn_ws_diagnostics/); cases already there are skipped.

    python benchmarks/diagnose_gn_ws.py [CASE ...] [--threads 2]   (the first six cases ran with 1 thread)
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "gn_ws_diagnostics.jsonl"
MEDIUM = ["data.dataset.limit=5000", "trainer.epochs=3", "trainer.log_every=10", "trainer.progress=false",
          "trainer.tensorboard=false", "device=cpu", "seed=0", "trainer.max_minutes=null", "trainer.hooks=[]"]
BN, GN_WS = "recipes/image/byol_cifar10_cpu.yaml", "recipes/variants/image/gn_ws_cifar10_cpu.yaml"
CASES = {
    "bn": (BN, []),
    "gn_ws": (GN_WS, []),
    "enc_gn_ws+heads_bn": (BN, ["model.encoder.norm=gn_ws"]),
    "enc_gn_ws+heads_gn": (GN_WS, ["model.projector.norm=gn", "model.predictor.norm=gn"]),
    "enc_bn+heads_gn_ws": (GN_WS, ["model.encoder.norm=bn"]),
    "gn_ws lr0.3": (GN_WS, ["optimizer.lr=0.3"]),
    "gn_ws tau0.99": (GN_WS, ["ema.tau_base=0.99"]),
    "gn_ws zero_init_residual": (GN_WS, ["model.encoder.zero_init_residual=true"]),
    "gn_ws min4ch": (GN_WS, []),
    "gn_ws no_last_bias": (GN_WS, ["model.projector.last_bias=false", "model.predictor.last_bias=false"]),
}
PATCHES = {"gn_ws min4ch": 4}  # case → minimum channels per group


def groups_with_min_channels(min_channels: int):
    """The group rule with at least ``min_channels`` per group: the largest g ≤ 16 dividing C with C/g ≥ min."""
    def rule(channels: int, groups: int = 16) -> int:
        return max([g for g in range(1, groups + 1) if channels % g == 0 and channels // g >= min_channels] or [1])
    return rule


@contextlib.contextmanager
def patched(name: str):
    from ssl_toolkit.engine import norms

    if name not in PATCHES:
        yield
        return
    saved, norms.gn_groups = norms.gn_groups, groups_with_min_channels(PATCHES[name])
    try:
        yield
    finally:
        norms.gn_groups = saved


def run(name: str) -> dict:
    from ssl_toolkit.recipe import load_recipe
    from ssl_toolkit.train.trainer import Trainer

    recipe, extra = CASES[name]
    out = ROOT / "runs" / "gn_ws_diagnostics" / name.replace(" ", "_").replace("+", "_")
    start = time.time()
    with patched(name):
        Trainer(load_recipe(ROOT / recipe, MEDIUM + extra), out_dir=out, quiet=True, overwrite=True).fit()
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    return {"case": name, "recipe": recipe, "overrides": extra, "loss": float(rows[-1]["loss"]),
            "collapse": float(rows[-1]["collapse"]), "collapse_min": min(float(r["collapse"]) for r in rows),
            "seconds": round(time.time() - start, 1), "threads": torch.get_num_threads(),
            "curve": [round(float(r["collapse"]), 3) for r in rows]}


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="*", help="cases to run (default: all not yet logged)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        ap.error(f"unknown case(s) {unknown}; cases: {', '.join(CASES)}")
    torch.set_num_threads(args.threads)
    done = {json.loads(line)["case"] for line in RESULTS.read_text().splitlines()} if RESULTS.exists() else set()
    for name in args.cases or list(CASES):
        if name in done:
            continue
        res = run(name)
        print(json.dumps(res), flush=True)
        with open(RESULTS, "a") as f:
            f.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
