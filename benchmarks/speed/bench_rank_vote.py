"""The cost of the DDP loop's per-batch vote (``training.distributed.every_rank``): every process says whether its
batch can make a step (≥ 2 usable items) and whether it was signalled to stop, so that all step or none does and
all stop at one batch. One gloo all-reduce of two integers per batch, timed here in 2 CPU processes on this
machine; a step of the CPU recipes takes 0.1–1 s.

    python benchmarks/speed/bench_rank_vote.py [--votes 2000]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import ROOT, environment, write_results  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _votes(rank: int, port: int, n: int, out: str) -> None:
    import torch
    import torch.distributed as dist

    from ssl_toolkit.training.distributed import every_rank

    torch.set_num_threads(1)
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    for _ in range(50):
        every_rank(True, True)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        for _ in range(n):
            every_rank(rank == 0, True)  # as the loop votes (usable, calm); the answer does not change the cost
        times.append((time.perf_counter() - t0) / n)
    if rank == 0:
        Path(out).write_text(" ".join(str(t) for t in times))
    dist.barrier()  # both ranks leave together: gloo aborts a process whose peer tears down first
    dist.destroy_process_group()


def main() -> int:
    import statistics

    import torch
    import torch.multiprocessing as mp

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--votes", type=int, default=2000)
    args = ap.parse_args()
    out = ROOT / "runs" / "bench_rank_vote.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]  # other jobs on the cores slow the vote: the table says how busy the machine was
    mp.spawn(_votes, args=(_free_port(), args.votes, str(out)), nprocs=2, join=True)
    per_vote = [float(t) for t in out.read_text().split()]
    med = statistics.median(per_vote)
    payload = {"votes_per_repeat": args.votes, "seconds_per_vote": per_vote, "median_us": 1e6 * med, "load": load}
    payload["env"] = environment(torch.device("cpu"))
    lines = [
        "# The DDP loop's per-batch vote (benchmarks/speed/bench_rank_vote.py)",
        "",
        f"2 gloo CPU processes, {args.votes} votes × 5 repeats: median **{1e6 * med:.0f} µs per batch** "
        f"(repeats {', '.join(f'{1e6 * t:.0f}' for t in per_vote)} µs). Against a step of the CPU recipes "
        f"(0.1–1 s) that is {100 * med / 1.0:.2f}–{100 * med / 0.1:.2f} %. Load average at the start "
        f"{load:.1f} on {os.cpu_count()} cores (above 0: other jobs shared the cores and slowed the votes).",
    ]
    print(write_results(ROOT / "benchmarks" / "results", "bench_rank_vote", payload, lines).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
