"""What the live quality monitors cost: the shipped recipes' training time with their hooks on vs off.

Each round runs ``ssl-toolkit train`` twice per recipe, in alternating order: as shipped (``trainer.hooks`` of
the recipe: RankMe, the probe) and with ``trainer.hooks=[]``. Two figures: the seconds the monitors report they
spent measuring (their own timers, random-init measurement included) as a share of the run's training wall time
(the last metrics row's ``elapsed_s``, from before the first step to the last one), and the on/off difference of
that wall time, which also holds the run-to-run noise of a shared 2-core CPU. Writes
results/bench_monitor_cost.json and .md.

    python benchmarks/speed/bench_monitor_cost.py --rounds 2
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: harness, contenders
import torch  # noqa: E402
from harness import ROOT, environment, write_results

RECIPES = {  # name: (recipe, overrides, needs ../shared)
    # the whole `make demo` run (210 steps: RankMe and the EmoDB probe)
    "byola_demo (make demo, 210 steps)": ("recipes/audio/byola_demo.yaml", [], False),
    # 200 of the 1,872 steps, RankMe at init, at the first row and at step 200: a larger share than the full
    # run's, which measures every 200 steps
    "byol_cifar10_cpu (first 200 steps)": (
        "recipes/image/byol_cifar10_cpu.yaml",
        ["trainer.max_steps=200", "trainer.max_minutes=null"],
        True,
    ),
}


def train_seconds(recipe: str, overrides: list[str], out: Path) -> tuple[float, float]:
    """(training wall time, seconds the monitors report they spent measuring)."""
    cmd = [
        sys.executable,
        "-m",
        "ssl_toolkit",
        "train",
        str(ROOT / recipe),
        "--out",
        str(out),
        "trainer.progress=false",
        "trainer.tensorboard=false",
        *overrides,
    ]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{recipe} failed:\n{done.stderr[-2000:]}")
    spent = sum(float(v) for v in re.findall(r"([0-9.]+) s spent measuring", done.stdout + done.stderr))
    with (out / "metrics.csv").open(newline="") as f:
        return float(list(csv.DictReader(f))[-1]["elapsed_s"]), spent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=None, help="recipe names (the start of the table's names)")
    ap.add_argument("--merge", action="store_true", help="keep the other recipes' rows of the existing JSON")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    shared = (ROOT.parent / "shared" / "data").is_dir()
    todo = {
        n: v
        for n, v in RECIPES.items()
        if (shared or not v[2]) and (args.only is None or any(n.startswith(o) for o in args.only))
    }
    times = {n: {"on": [], "off": [], "spent": []} for n in todo}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for name, (recipe, overrides, _) in todo.items():
                order = ["on", "off"] if r % 2 == 0 else ["off", "on"]
                for label in order:
                    extra = overrides + (["trainer.hooks=[]"] if label == "off" else [])
                    t, spent = train_seconds(recipe, extra, Path(tmp) / f"{label}-{r}-{abs(hash(name))}")
                    times[name][label].append(t)
                    if label == "on":
                        times[name]["spent"].append(spent)
                    print(
                        f"round {r + 1}: {name}: monitors {label}: {t:.1f} s (monitors' own timers: {spent:.1f} s)",
                        flush=True,
                    )
    summary = {}
    previous = Path(args.out) / "bench_monitor_cost.json"
    if args.merge and previous.exists():
        summary = {n: v for n, v in json.loads(previous.read_text())["results"].items() if n in RECIPES}
    for name, t in times.items():
        on, off, spent = statistics.median(t["on"]), statistics.median(t["off"]), statistics.median(t["spent"])
        summary[name] = {
            "on_s": on,
            "off_s": off,
            "spent_s": spent,
            "share": spent / on,
            "overhead": on / off - 1,
            "rounds": args.rounds,
            **t,
        }
    lines = [
        "# Cost of the shipped monitors (trainer.hooks as shipped vs trainer.hooks=[])",
        "",
        "Training wall time (last row's elapsed_s; median of the alternated rounds), the seconds the",
        "monitors' own timers report (random-init measurement included) and their share of the wall time, 2-core CPU.",
        "",
        "| recipe | rounds | hooks as shipped (s) | monitors' own timers (s) | share | no hooks (s) | on/off |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, v in summary.items():
        lines.append(
            f"| {name} | {v.get('rounds', 1)} | {v['on_s']:.1f} | {v['spent_s']:.1f} | "
            f"{100 * v['share']:.1f} % | {v['off_s']:.1f} | {100 * v['overhead']:+.1f} % |"
        )
    payload = {"results": summary, "environment": environment(torch.device("cpu"))}
    print(write_results(args.out, "bench_monitor_cost", payload, lines).read_text())


if __name__ == "__main__":
    main()
