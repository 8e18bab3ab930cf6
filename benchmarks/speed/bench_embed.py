"""Throughput of ``ssl-toolkit embed`` on this machine: files/s, decoding included.

- FSDD (../shared/data/fsdd, 3,000 wav files of 0.14-2.28 s at 8 kHz, resampled to 16 kHz) with AudioNTT2020
  d=2048 (random weights; pre_norm statistics measured on the input, as for official weights), 1 s pieces;
- the 5,000 CIFAR-10 test images of the subset (../shared/data/cifar10), written as PNG files first, with the
  byol_cifar10_cpu.yaml encoder (ResNet-18 width 0.25, CIFAR stem; random weights).

Each in fp32 and bf16, alternating. Writes benchmarks/results/bench_embed.{json,md}.

    python benchmarks/speed/bench_embed.py [--limit N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: harness, contenders
import torch
from harness import ROOT, environment, write_results

SHARED = ROOT.parent / "shared" / "data"


def cifar_pngs(folder: Path, limit: int | None) -> Path:
    from PIL import Image

    with np.load(SHARED / "cifar10" / "cifar10_subset_20k_5k.npz") as z:
        images = z["x_test"]  # (N, 32, 32, 3) uint8
    images = images[:limit] if limit else images
    folder.mkdir(parents=True)
    for i, img in enumerate(images):
        Image.fromarray(img).save(folder / f"{i:05d}.png")
    return folder


def fsdd_folder(folder: Path, limit: int | None) -> Path:
    files = sorted((SHARED / "fsdd" / "recordings").glob("*.wav"))
    files = files[:limit] if limit else files
    folder.mkdir(parents=True)
    for f in files:
        (folder / f.name).symlink_to(f)
    return folder


def main(argv=None) -> int:
    from ssl_toolkit.embed import EmbedSettings, run_embed
    from ssl_toolkit.eval.models import write_random_checkpoint
    from ssl_toolkit.recipe import load_recipe

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=None, help="files per input (default: all)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        audio, images = fsdd_folder(tmp / "fsdd", args.limit), cifar_pngs(tmp / "cifar", args.limit)
        image_ckpt = write_random_checkpoint(
            load_recipe(ROOT / "recipes" / "image" / "byol_cifar10_cpu.yaml"),
            tmp / "cifar_run" / "checkpoints" / "last.pt",
        )
        cases = [
            ("FSDD, audiontt2020 d=2048", "random", audio, {"name": "audiontt2020", "feature_d": 2048}),
            ("CIFAR-10 test PNGs, resnet18 w0.25", str(image_ckpt), images, None),
        ]
        for precision in ("fp32", "bf16"):
            for what, ckpt, folder, encoder in cases:
                out = tmp / f"out-{len(rows)}"
                m = run_embed(ckpt, folder, out, EmbedSettings(precision=precision, progress=False), encoder=encoder)
                rows.append(
                    {
                        "input": what,
                        "precision": precision,
                        "files": m["n_files"],
                        "seconds": m["seconds"],
                        "files_per_s": m["files_per_second"],
                        "dim": m["feature_dim"],
                    }
                )
                print(rows[-1], flush=True)
    env = environment(torch.device("cpu"))
    lines = [
        f"# ssl-toolkit embed throughput ({env['device']}, {env['threads']} threads, torch {env['torch']}, "
        f"load average {env['load_average_1_5_15'][0]} at the end)",
        "",
        "| input | precision | files | D | seconds | files / s |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['input']} | {r['precision']} | {r['files']} | {r['dim']} | {r['seconds']} | {r['files_per_s']} |"
        for r in rows
    ]
    write_results(Path(args.out), "bench_embed", {"environment": env, "rows": rows}, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
