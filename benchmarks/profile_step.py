"""Where a training step spends its time: torch.profiler over a few end-to-end steps of the shipped CPU
recipes (views + forward + backward + optimizer + EMA), grouped into phases and by operator.

    python benchmarks/profile_step.py [--recipe image|audio] [--steps 5] [--out benchmarks/results]

Writes profile_<recipe>.json / .md: time per phase (record_function ranges: views, forward, backward,
optimizer, ema) and the operators with the most self CPU time.
"""
from __future__ import annotations

import argparse
import contextlib
import sys

from harness import ROOT, environment, write_results

import torch  # noqa: E402
from torch.profiler import ProfilerActivity, profile, record_function  # noqa: E402

from ssl_toolkit.recipe import load_recipe  # noqa: E402
from ssl_toolkit.registry import DATASETS  # noqa: E402

RECIPES = {
    "image": (ROOT / "recipes" / "image" / "byol_cifar10_cpu.yaml",
              [f"data.dataset.path={ROOT.parent / 'shared' / 'data' / 'cifar10' / 'cifar10_subset_20k_5k.npz'}"]),
    "audio": (ROOT / "recipes" / "audio" / "byola_fsdd.yaml",
              ["views.input.1.mean=-6.0", "views.input.1.std=4.5"]),
}
PHASES = ("views", "forward", "backward", "optimizer", "ema")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", choices=tuple(RECIPES), default="image")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args(argv)
    from ssl_toolkit.recipe import import_components
    from ssl_toolkit.train.optim import build_optimizer
    from ssl_toolkit.train.trainer import build_method
    from ssl_toolkit.views import ViewMaker

    import_components()
    path, overrides = RECIPES[args.recipe]
    recipe = load_recipe(path, overrides)
    ds = DATASETS.build(recipe.data.dataset.name, **recipe.data.dataset.params)
    b = recipe.data.batch_size
    x = torch.stack([torch.as_tensor(ds[i % len(ds)][0]) for i in range(b)])
    views = ViewMaker.from_config(recipe.views)
    method = build_method(recipe).train()
    cl = recipe.trainer.channels_last
    if cl:
        method = method.to(memory_format=torch.channels_last)
    optimizer, _ = build_optimizer(recipe.optimizer, method, b)
    gen = torch.Generator().manual_seed(0)
    amp = (torch.autocast("cpu", dtype=torch.bfloat16) if recipe.precision == "bf16" else contextlib.nullcontext())

    def step(k: int) -> None:
        with record_function("views"), torch.no_grad():
            v = views(x, gen)
            if cl:
                v = [t.contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t for t in v]
        with record_function("forward"), amp:
            loss = method(v)["loss"]
        with record_function("backward"):
            loss.backward()
        with record_function("optimizer"):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        with record_function("ema"):
            method.update_targets(k, 10_000)

    for k in range(2):
        step(k)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for k in range(args.steps):
            step(k + 2)
    events = prof.key_averages()
    total = sum(e.cpu_time_total for e in events if e.key in PHASES)
    phases = {e.key: e.cpu_time_total / args.steps / 1e3 for e in events if e.key in PHASES}
    ops = sorted((e for e in events if e.key not in PHASES and not e.key.startswith("ProfilerStep")),
                 key=lambda e: e.self_cpu_time_total, reverse=True)[:args.top]
    op_rows = [{"op": e.key, "self_ms_per_step": e.self_cpu_time_total / args.steps / 1e3, "calls": e.count // args.steps,
                "share": e.self_cpu_time_total / total} for e in ops]
    env = environment(torch.device("cpu"))
    lines = [f"# Profile of one training step: {path.name} (batch {b}, {recipe.precision}, channels_last {cl}; "
             f"{env['threads']} threads, {env['date']})", "", "| phase | ms / step | share |", "|---|---:|---:|"]
    lines += [f"| {k} | {phases.get(k, 0):.1f} | {100 * phases.get(k, 0) * 1e3 * args.steps / total:.1f} % |"
              for k in PHASES]
    lines += ["", "| operator (self CPU time) | ms / step | calls / step | share of step |", "|---|---:|---:|---:|"]
    lines += [f"| {r['op']} | {r['self_ms_per_step']:.1f} | {r['calls']} | {100 * r['share']:.1f} % |" for r in op_rows]
    write_results(args.out, f"profile_{args.recipe}", {"env": env, "phases_ms": phases, "ops": op_rows}, lines)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
