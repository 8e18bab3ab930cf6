"""Where BN-free BYOL (``norm: gn_ws``) collapses (issue 17): the medium size (5,000 CIFAR images × 3 epochs,
seed 0, 1 thread) with GN+WS in the encoder and/or the heads, and with a lower lr. Each finished case appends its
final and minimum collapse metric, loss and collapse curve to benchmarks/results/gn_ws_diagnostics.jsonl (run
folders in runs/gn_ws_diagnostics/); cases already there are skipped.

    python benchmarks/diagnose_gn_ws.py [CASE ...]
"""
from __future__ import annotations

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
}


def run(name: str) -> dict:
    from ssl_toolkit.recipe import load_recipe
    from ssl_toolkit.train.trainer import Trainer

    recipe, extra = CASES[name]
    out = ROOT / "runs" / "gn_ws_diagnostics" / name.replace(" ", "_").replace("+", "_")
    start = time.time()
    Trainer(load_recipe(ROOT / recipe, MEDIUM + extra), out_dir=out, quiet=True, overwrite=True).fit()
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    return {"case": name, "recipe": recipe, "overrides": extra, "loss": float(rows[-1]["loss"]),
            "collapse": float(rows[-1]["collapse"]), "collapse_min": min(float(r["collapse"]) for r in rows),
            "seconds": round(time.time() - start, 1), "curve": [round(float(r["collapse"]), 3) for r in rows]}


def main(argv: list[str]) -> int:
    torch.set_num_threads(1)
    done = {json.loads(line)["case"] for line in RESULTS.read_text().splitlines()} if RESULTS.exists() else set()
    for name in argv or list(CASES):
        if name in done:
            continue
        res = run(name)
        print(json.dumps(res), flush=True)
        with open(RESULTS, "a") as f:
            f.write(json.dumps(res) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
