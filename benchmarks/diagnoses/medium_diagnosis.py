"""Shared harness of the medium-size diagnoses (``diagnose_gn_ws.py``, ``diagnose_stiefel.py``): each case is
a shipped recipe plus overrides, trained at the medium size (5,000 CIFAR-10 images × 3 epochs, seed 0, no linear
eval); each finished case appends one JSON line (final and minimum collapse metric, loss, collapse curve, time,
plus what the script's ``run`` adds to the row of ``train_case``) to the script's results file and is skipped
when run again; the markdown table beside it is rewritten from every line.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

import torch  # noqa: E402
from jsonl_log import append_jsonl, read_jsonl  # noqa: E402

MEDIUM = [
    "data.dataset.limit=5000",
    "trainer.epochs=3",
    "trainer.log_every=10",
    "trainer.progress=false",
    "trainer.tensorboard=false",
    "device=cpu",
    "seed=0",
    "trainer.max_minutes=null",
    "trainer.hooks=[]",
]
SIZE_NOTE = (
    "Medium size: 5,000 CIFAR-10 subset images × 3 epochs (117 steps), seed 0, no linear eval; collapse "
    "metric = std of the L2-normalized projections × √d (≈1 healthy, →0 collapsed), logged every 10 "
    "steps. One seed each: a diagnosis, not a result."
)


def train_case(
    name: str,
    recipe: str,
    extra: list[str],
    out_root: str,
    context: Callable[[str], contextlib.AbstractContextManager] | None = None,
) -> tuple[dict, Path]:
    """Train one case (inside ``context(name)`` if given); its row and its run folder."""
    from ssl_toolkit.recipe import load_recipe
    from ssl_toolkit.training.trainer import Trainer

    out = ROOT / "runs" / out_root / name.replace(" ", "_").replace("+", "_")
    start = time.time()
    with context(name) if context else contextlib.nullcontext():
        Trainer(load_recipe(ROOT / recipe, MEDIUM + extra), out_dir=out, quiet=True, overwrite=True).fit()
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    row = {
        "case": name,
        "recipe": recipe,
        "overrides": extra,
        "loss": float(rows[-1]["loss"]),
        "collapse": float(rows[-1]["collapse"]),
        "collapse_min": min(float(r["collapse"]) for r in rows),
        "seconds": round(time.time() - start, 1),
        "threads": torch.get_num_threads(),
        "curve": [round(float(r["collapse"]), 3) for r in rows],
    }
    return row, out


def main(
    argv: list[str],
    doc: str,
    cases: dict,
    results: Path,
    run: Callable[[str], dict],
    markdown: Callable[[list[dict]], str],
) -> int:
    """Run the cases named in ``argv`` (default: every case not yet in ``results``), then rewrite the table."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("cases", nargs="*", help="cases to run (default: all not yet logged)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    unknown = [c for c in args.cases if c not in cases]
    if unknown:
        ap.error(f"unknown case(s) {unknown}; cases: {', '.join(cases)}")
    torch.set_num_threads(args.threads)
    done = {r["case"] for r in read_jsonl(results)}
    for name in args.cases or list(cases):
        if name in done:
            continue
        res = run(name)
        print(json.dumps(res), flush=True)
        append_jsonl(results, [res])
    rows = read_jsonl(results)
    results.with_suffix(".md").write_text(markdown(rows))
    return 0
