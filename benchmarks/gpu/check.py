"""The GPU check: one command on a machine with a CUDA device, every figure written under OUT as soon as its stage
ends (a stage has its own time budget, run in a child process that is killed at the budget), most important first:

1. ``env``          GPU, driver, torch / CUDA / cuDNN, and the measured bf16 matmul peak (8192³, 10 timed products)
2. ``cuda_tests``   ``pytest -m cuda`` (tests/test_cuda.py): the CUDA path's tests
3. ``peers``        image BYOL throughput side by side, alternated timed windows: ssl_toolkit vs lightly vs
                    byol-pytorch, ResNet-18 and ResNet-50 (CIFAR stem), batch 256, bf16 autocast, the same encoder
                    module (benchmarks/speed/bench_peers.py on cuda; synthetic CIFAR-shaped uint8 images)
4. ``utilization``  the ResNet-50 BYOL step at batch 256, 224 px, bf16 (byol_imagenet.yaml): FLOPs per step
                    (torch.utils.flop_counter) / step time / the measured peak
5. ``loader``       data-loading headroom at the shipped num_workers: images/s the ImageNet recipe's loader delivers
                    (JPEG decoding, image_folder) vs images/s the stage-4 step consumes
6. ``byola``        BYOL-A (AudioNTT2020 d=2048, batch 256) vs the official per-sample structure
                    (benchmarks/speed/bench_audio_peers.py on cuda, the demo speech)

Without CUDA it prints "no CUDA device: nothing measured" and exits 0 (a CI test runs it so). ``--smoke`` runs every
stage here on the CPU at toy sizes (batch 4–8, a 512² matmul, 64 JPEGs): the code paths of the one GPU call,
checked before a GPU is lent (a CI test runs it; its figures mean nothing).

    python benchmarks/gpu/check.py --out $OUT            # on the GPU machine (benchmarks/gpu/README.md)
    python benchmarks/gpu/check.py --smoke --out /tmp/smoke
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "benchmarks" / "speed")]
sys.path.insert(0, str(ROOT))
BUDGETS = {"env": 20, "cuda_tests": 90, "peers": 100, "utilization": 25, "loader": 20, "byola": 40}
"""Seconds per stage: under 5 minutes in all (the stage is killed, with its workers, at its budget)."""


def write(out: Path, name: str, payload: dict) -> None:
    (out / f"gpu_{name}.json").write_text(json.dumps(payload, indent=1, default=str) + "\n")


def sizes(args) -> dict:
    """The measured sizes, or toy ones for ``--smoke`` (CPU)."""
    if args.smoke:
        return {
            "device": "cpu",
            "batch": 8,
            "big_batch": 4,
            "matmul": 512,
            "jpegs": 64,
            "windows": 1,
            "warmup": 1,
            "steps": 1,
        }
    return {
        "device": "cuda",
        "batch": 256,
        "big_batch": 256,
        "matmul": 8192,
        "jpegs": 1024,
        "windows": None,
        "warmup": 5,
        "steps": None,
    }


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def stage_env(out: Path, args) -> dict:
    import torch

    s = sizes(args)
    dev, n = torch.device(s["device"]), s["matmul"]
    info = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "python": sys.version.split()[0],
    }
    if dev.type == "cuda":
        props = torch.cuda.get_device_properties(dev)
        smi = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm", "--format=csv,noheader"],
            capture_output=True,
            text=True,
        )
        info.update(
            {
                "gpu": props.name,
                "capability": f"{props.major}.{props.minor}",
                "sms": props.multi_processor_count,
                "memory_gib": round(props.total_memory / 2**30, 1),
                "nvidia_smi": smi.stdout.strip(),
            }
        )
    a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    _sync(s["device"])
    start = time.perf_counter()
    for _ in range(10):
        a @ b
    _sync(s["device"])
    seconds = (time.perf_counter() - start) / 10
    return {**info, "matmul_n": n, "bf16_matmul_tflops": round(2 * n**3 / seconds / 1e12, 3)}


def stage_cuda_tests(out: Path, args) -> dict:
    budget = BUDGETS["cuda_tests"] - 5
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-m",
                "cuda",
                "-q",
                "-p",
                "no:cacheprovider",
                "-rA",
                str(ROOT / "tests" / "test_cuda.py"),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=budget,
        )
        text, code = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as e:
        text, code = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or ""), -9
    summary = [line for line in text.splitlines() if " passed" in line or " failed" in line or " error" in line]
    return {
        "returncode": code,
        "summary": summary[-1] if summary else "no summary (timed out?)",
        "log_tail": text[-20000:],
    }


def synthetic_cifar(path: Path) -> Path:
    import numpy as np

    if not path.exists():
        rng = np.random.default_rng(0)
        np.savez(
            path, x_train=rng.integers(0, 256, (20000, 32, 32, 3), dtype=np.uint8), y_train=rng.integers(0, 10, 20000)
        )
    return path


def stage_peers(out: Path, args) -> dict:
    import importlib.util

    from bench_peers import bench_setting, table

    contenders = ["ssl_toolkit"] + [
        c
        for c, mod in (("lightly", "lightly"), ("byol_pytorch", "byol_pytorch"))
        if importlib.util.find_spec(mod) is not None
    ]
    data = str(synthetic_cifar(Path(args.work) / "cifar_synthetic.npz"))
    s = sizes(args)
    rows = []
    for key in ("gpu-r18-bf16", "gpu-r50-bf16"):
        rows += bench_setting(
            key,
            contenders,
            sys.executable,
            s["batch"],
            args.workers,
            s["windows"],
            s["warmup"],
            s["device"],
            data,
            s["steps"],
        )
        stage_partial(out, "peers", {"contenders": contenders, "rows": rows, "table": table(rows, contenders)})
    return {"contenders": contenders, "rows": rows, "table": table(rows, contenders)}


def _imagenet_step(batch: int, device: str):
    import torch
    from harness import byol_training_step

    from ssl_toolkit.recipe import load_recipe

    recipe = load_recipe(
        ROOT / "recipes" / "image" / "byol_imagenet.yaml",  # synthetic batches: no data read
        [f"device={device}", "data.dataset.path=unused"],
        check_files=False,
    )
    step, method = byol_training_step(recipe, torch.device(device), "bf16", batch)
    x = torch.randint(0, 256, (batch, 3, 256, 256), dtype=torch.uint8, device=device)
    return recipe, step, x


def stage_utilization(out: Path, args) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    s = sizes(args)
    env = out / "gpu_env.json"
    peak = (json.loads(env.read_text()).get("result") or {}).get("bf16_matmul_tflops") if env.exists() else None
    batch = s["big_batch"]
    _, step, x = _imagenet_step(batch, s["device"])
    for _ in range(1 if args.smoke else 3):
        step(x)
    counter = FlopCounterMode(display=False)
    step(x, counter)
    flops = counter.get_total_flops()
    _sync(s["device"])
    start = time.perf_counter()
    n = 1 if args.smoke else 10
    for _ in range(n):
        step(x)
    _sync(s["device"])
    seconds = (time.perf_counter() - start) / n
    return {
        "batch": batch,
        "image_px": 224,
        "tflop_per_step": round(flops / 1e12, 3),
        "step_s": round(seconds, 4),
        "images_per_s": round(batch / seconds, 1),
        "achieved_tflops": round(flops / seconds / 1e12, 3),
        "peak_tflops": peak,
        "utilization": round(flops / seconds / 1e12 / peak, 3) if peak else None,
    }


def stage_loader(out: Path, args) -> dict:
    import numpy as np
    import torch
    from torchvision.io import encode_jpeg

    from ssl_toolkit.recipe import load_recipe
    from ssl_toolkit.training.builders import build_loader

    s = sizes(args)
    folder = Path(args.work) / f"jpegs{s['jpegs']}" / "train" / "x"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        rng = np.random.default_rng(0)
        for i in range(s["jpegs"]):
            img = torch.from_numpy(rng.integers(0, 256, (3, 300, 400), dtype=np.uint8))
            (folder / f"{i}.jpg").write_bytes(encode_jpeg(img, quality=90).numpy().tobytes())
    recipe = load_recipe(
        ROOT / "recipes" / "image" / "byol_imagenet.yaml",
        [f"data.dataset.path={folder.parent.parent}", f"data.batch_size={s['batch']}", f"device={s['device']}"],
    )
    _, _, loader = build_loader(recipe, torch.device(s["device"]))
    it = iter(loader)
    next(it)
    start, n = time.perf_counter(), 0
    for x, _, _ in it:
        n += x.shape[0]
    delivered = n / (time.perf_counter() - start)
    step = out / "gpu_utilization.json"
    consumed = (json.loads(step.read_text()).get("result") or {}).get("images_per_s") if step.exists() else None
    return {
        "num_workers": recipe.data.num_workers,
        "cpu_count": os.cpu_count(),
        "loader_images_per_s": round(delivered, 1),
        "step_images_per_s": consumed,
        "headroom": round(delivered / consumed, 2) if consumed else None,
    }


def stage_byola(out: Path, args) -> dict:
    from bench_audio_peers import main as audio_peers

    s = sizes(args)
    where = Path(args.work) / "byola"
    audio_peers(
        [
            "--device",
            s["device"],
            "--feature-d",
            "512" if args.smoke else "2048",
            "--batch",
            str(s["batch"]),
            "--precision",
            "bf16",
            "--workers",
            str(args.workers),
            "--windows",
            "1" if args.smoke else "3",
            *(["--steps", "1", "--warmup", "1"] if args.smoke else []),
            "--out",
            str(where),
        ]
    )
    return {
        name: json.loads(p.read_text()) if p.suffix == ".json" else p.read_text()
        for name, p in ((p.name, p) for p in sorted(where.glob("*")))
    }


STAGES = {
    "env": stage_env,
    "cuda_tests": stage_cuda_tests,
    "peers": stage_peers,
    "utilization": stage_utilization,
    "loader": stage_loader,
    "byola": stage_byola,
}


def summary(out: Path) -> str:
    lines = ["# GPU check (benchmarks/gpu/check.py)", ""]
    for name in STAGES:
        path = out / f"gpu_{name}.json"
        if not path.exists():
            lines.append(f"- {name}: not run")
            continue
        r = json.loads(path.read_text())
        res = r.get("result") or {}
        lines.append(
            f"- {name}: {r.get('status')} in {r.get('seconds')} s (budget {BUDGETS[name]} s)"
            + (f" — {r.get('error')}" if r.get("error") else "")
        )
        if name == "peers" and res.get("table"):
            lines += ["", *res["table"], ""]
        elif res and name == "byola":
            lines += ["", *[v for k, v in res.items() if k.endswith(".md")], ""]
        elif res and name != "peers":
            lines.append(
                "  " + json.dumps({k: v for k, v in res.items() if k not in ("rows", "log_tail")}, default=str)
            )
    return "\n".join(lines) + "\n"


def run_stage(name: str, out: Path, args) -> None:
    """In this process: one stage; its result (or error) goes to OUT/gpu_<name>.json."""
    start = time.perf_counter()
    try:
        result, status, error = STAGES[name](out, args), "ok", None
    except Exception as e:  # noqa: BLE001 - a failed stage is a result; the next stages still run
        result, status, error = None, "failed", f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    write(
        out,
        name,
        {"status": status, "seconds": round(time.perf_counter() - start, 1), "result": result, "error": error},
    )


def stage_partial(out: Path, name: str, result: dict) -> None:
    """A long stage's result so far (kept if the stage is stopped at its budget)."""
    write(out, name, {"status": "running", "seconds": None, "result": result, "error": None})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT", str(ROOT / "runs" / "gpu_check")))
    ap.add_argument("--stages", nargs="+", choices=tuple(STAGES), default=list(STAGES))
    ap.add_argument("--stage", choices=tuple(STAGES), help=argparse.SUPPRESS)  # a child process: one stage
    ap.add_argument("--workers", type=int, default=8, help="DataLoader workers of the peers")
    ap.add_argument("--work", default="/tmp/ssl_toolkit_gpu_check", help="synthetic data (not under OUT)")
    ap.add_argument("--smoke", action="store_true", help="every stage on the CPU at toy sizes (code paths only)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    Path(args.work).mkdir(parents=True, exist_ok=True)
    if args.stage:
        run_stage(args.stage, out, args)
        return 0
    import torch

    if not torch.cuda.is_available() and not args.smoke:
        print("no CUDA device: nothing measured")
        return 0
    for name in args.stages:
        start = time.perf_counter()
        cmd = [
            sys.executable,
            __file__,
            "--stage",
            name,
            "--out",
            str(out),
            "--workers",
            str(args.workers),
            "--work",
            args.work,
            *(["--smoke"] if args.smoke else []),
        ]
        budget = BUDGETS[name] * (6 if args.smoke else 1)  # a CPU is slower: --smoke checks code paths, not time
        child = subprocess.Popen(cmd, cwd=ROOT, start_new_session=True)  # its workers in its process group
        try:
            child.wait(timeout=budget)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)  # the stage and every worker it started: the GPU is free again
            child.wait()
            path = out / f"gpu_{name}.json"
            partial = json.loads(path.read_text()).get("result") if path.exists() else None
            write(
                out,
                name,
                {
                    "status": f"stopped at its {budget} s budget" + (" (partial)" if partial else ""),
                    "result": partial,
                    "seconds": round(time.perf_counter() - start, 1),
                    "error": None,
                },
            )
        (out / "gpu_summary.md").write_text(summary(out))
        print(f"{name}: {json.loads((out / f'gpu_{name}.json').read_text())['status']}", flush=True)
    print(summary(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
