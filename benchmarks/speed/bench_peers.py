"""Image BYOL training throughput side by side: ssl_toolkit vs lightly vs byol-pytorch, in one run.

Every contender (benchmarks/contenders.py) runs as a worker process in its own environment (ssl_toolkit in
this interpreter's, the peers in ``--peers-python``, by default .venv-bench/bin/python, see `make bench`).
For each setting (encoder width, precision) the workers are started, warmed up, then the script
alternates timed windows: contender A, B, C, then B, C, A, ...; only one worker computes at a time. A window
is ``--steps`` end-to-end steps (next batch + two augmented views + online/target forward + backward +
optimizer + EMA update). Before each timed window a worker whose DataLoader prefetches
(lightly: workers × prefetch_factor batches) first runs that many untimed steps, so its queue is in its
steady state rather than full. The figure is the median over windows of images / s.

    python benchmarks/speed/bench_peers.py                       # ResNet-18 fp32, width/4 fp32 and bf16, batch 128
    python benchmarks/speed/bench_peers.py --settings w4-bf16 --windows 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: harness, contenders

import torch  # noqa: E402
from contenders import CONTENDERS, PEERS_PYTHON, peers_missing  # noqa: E402
from harness import ROOT, environment, write_results

SETTINGS = {  # name: (label, width, precision, windows, steps per window[, architecture])
    "r18-fp32": ("ResNet-18 CIFAR stem, fp32", 1.0, "fp32", 3, 3),
    "r18-bf16": ("ResNet-18 CIFAR stem, bf16 autocast", 1.0, "bf16", 3, 3),
    "w4-fp32": ("ResNet-18 width/4 (0.7 M params), fp32", 0.25, "fp32", 5, 8),
    "w4-bf16": ("ResNet-18 width/4, bf16 autocast", 0.25, "bf16", 5, 8),
    # the GPU check's settings (benchmarks/gpu/check.py, batch 256 on CUDA)
    "gpu-r18-bf16": ("ResNet-18 CIFAR stem, bf16 autocast", 1.0, "bf16", 5, 20, "resnet18"),
    "gpu-r50-bf16": ("ResNet-50 CIFAR stem, bf16 autocast", 1.0, "bf16", 5, 10, "resnet50"),
}
DEFAULT = ("r18-fp32", "w4-fp32", "w4-bf16")
PREFETCH_FACTOR = 2  # torch's DataLoader default, which lightly's example keeps


class Worker:
    def __init__(
        self,
        name: str,
        python: str,
        width: float,
        precision: str,
        batch: int,
        workers: int,
        device: str = "cpu",
        arch: str = "resnet18",
        data: str | None = None,
    ):
        self.name = name
        self.drain = workers * PREFETCH_FACTOR if name == "lightly" else 0
        cmd = [
            python,
            str(ROOT / "benchmarks" / "contenders.py"),
            "serve",
            name,
            "--width",
            str(width),
            "--precision",
            precision,
            "--batch",
            str(batch),
            "--workers",
            str(workers),
            "--device",
            device,
            "--arch",
            arch,
            *(["--data", data] if data else []),
        ]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)

    def run(self, steps: int) -> dict:
        self.proc.stdin.write(f"run {steps}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"the {self.name} worker died (exit {self.proc.wait()}); see its messages above")
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.write("quit\n")
        self.proc.stdin.flush()
        self.proc.wait(timeout=120)


def bench_setting(
    key: str,
    contenders: list[str],
    peers_python: str,
    batch: int,
    workers: int,
    windows: int | None,
    warmup: int,
    device: str = "cpu",
    data: str | None = None,
    steps: int | None = None,
) -> list[dict]:
    label, width, precision, n_windows, default_steps, *rest = SETTINGS[key]
    arch = rest[0] if rest else "resnet18"
    n_windows, steps = windows or n_windows, steps or default_steps
    pool = [
        Worker(
            c,
            sys.executable if c == "ssl_toolkit" else peers_python,
            width,
            precision,
            batch,
            workers,
            device,
            arch,
            data,
        )
        for c in contenders
    ]
    try:
        for w in pool:
            w.run(warmup + w.drain)
        rates: dict[str, list[float]] = {w.name: [] for w in pool}
        for i in range(n_windows):
            for w in pool[i % len(pool) :] + pool[: i % len(pool)]:  # rotate who goes first
                if w.drain:
                    w.run(w.drain)
                r = w.run(steps)
                rates[w.name].append(r["images"] / r["seconds"])
                print(
                    f"  {label} · {w.name} window {i + 1}: {rates[w.name][-1]:.1f} img/s", file=sys.stderr, flush=True
                )
    finally:
        for w in pool:
            w.close()
    return [
        {
            "setting": key,
            "label": label,
            "width": width,
            "precision": precision,
            "arch": arch,
            "device": device,
            "contender": c,
            "batch": batch,
            "windows": r,
            "images_per_s": statistics.median(r),
        }
        for c, r in rates.items()
    ]


def table(rows: list[dict], contenders: list[str]) -> list[str]:
    peers = [c for c in contenders if c != "ssl_toolkit"]
    head = "| setting | " + " | ".join(f"{c} img/s" for c in contenders)
    head += "".join(f" | ssl_toolkit / {p}" for p in peers if "ssl_toolkit" in contenders) + " |"
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for key in dict.fromkeys(r["setting"] for r in rows):
        by = {r["contender"]: r for r in rows if r["setting"] == key}
        cells = [f"{by[c]['images_per_s']:.1f}" for c in contenders]
        if "ssl_toolkit" in contenders:
            cells += [f"{by['ssl_toolkit']['images_per_s'] / by[p]['images_per_s']:.2f}×" for p in peers]
        lines.append(f"| {next(iter(by.values()))['label']} | " + " | ".join(cells) + " |")
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", nargs="+", choices=tuple(SETTINGS), default=list(DEFAULT))
    ap.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    ap.add_argument("--peers-python", default=str(PEERS_PYTHON))
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--workers", type=int, default=2, help="DataLoader workers of the peers")
    ap.add_argument("--windows", type=int, default=None, help="timed windows per contender (default per setting)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps per worker before the first window")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    if peers_missing(args.peers_python, args.contenders):
        return 2
    rows = []
    for key in args.settings:
        rows += bench_setting(
            key, args.contenders, args.peers_python, args.batch, args.workers, args.windows, args.warmup
        )
    env = environment(torch.device("cpu"))
    lines = [
        f"# Image BYOL training throughput, side by side (batch {args.batch}, {env['cpu_count']} CPUs, "
        f"torch {env['torch']}, {env['date']})",
        "",
        "Median over alternating timed windows of end-to-end steps (data + 2 views + forward/backward + "
        f"optimizer + EMA); peers' DataLoader workers: {args.workers}.",
        "",
        *table(rows, args.contenders),
    ]
    md = write_results(args.out, "bench_peers", {"env": env, "args": vars(args), "results": rows}, lines)
    print("\n".join(lines))
    print(f"results: {md}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
