"""Reading speed of WebDataset shards against the folder / npz datasets on this machine: decoded items/s.

- CIFAR-10 subset (../shared/data/cifar10, 20,000 training images): the ``npz`` dataset (uint8 arrays in memory),
  the images as PNG files read by ``image_folder``, and the same PNGs in shards (``webdataset_images``);
- FSDD (../shared/data/fsdd, 3,000 wav files): ``audio_folder`` decoding every epoch (``cache: none``) and
  preloaded (``cache: memory``, decoding timed separately), and the wavs in shards (``webdataset_audio``).

One epoch through a DataLoader (batch 256, collation included, no training), each reader with 0 and 2 workers,
contenders alternating. Writes benchmarks/results/bench_shards.{json,md}.

    python benchmarks/speed/bench_shards.py [--limit N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/: harness, contenders
import torch
from harness import ROOT, environment, write_results

SHARED = ROOT.parent / "shared" / "data"
BATCH = 256


def epoch_rate(ds, workers: int) -> tuple[float, int]:
    from ssl_toolkit.data import collate_skipping_bad

    if isinstance(ds, torch.utils.data.IterableDataset):
        ds.configure(BATCH, 0, 1)
        loader = torch.utils.data.DataLoader(ds, batch_size=BATCH, num_workers=workers, collate_fn=collate_skipping_bad)
    else:
        loader = torch.utils.data.DataLoader(
            ds, batch_size=BATCH, shuffle=True, num_workers=workers, collate_fn=collate_skipping_bad, drop_last=True
        )
    start, n = time.perf_counter(), 0
    for x, _, _ in loader:
        n += 0 if x is None else x.shape[0]
    return n / (time.perf_counter() - start), n


def main(argv=None) -> int:
    from PIL import Image

    from ssl_toolkit.audio.dataset import AudioFolder
    from ssl_toolkit.image.datasets import ImageFolder, NpzImages
    from ssl_toolkit.shard_command import write_shards
    from ssl_toolkit.shards import WebDatasetAudio, WebDatasetImages

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--limit", type=int, default=None, help="items per data set (default: all)")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)
    npz = SHARED / "cifar10" / "cifar10_subset_20k_5k.npz"
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with np.load(npz) as z:
            images = z["x_train"][: args.limit] if args.limit else z["x_train"]
        (tmp / "png").mkdir()
        for i, img in enumerate(images):
            Image.fromarray(img).save(tmp / "png" / f"{i:05d}.png")
        wavs = sorted((SHARED / "fsdd" / "recordings").glob("*.wav"))[: args.limit]
        (tmp / "wav").mkdir()
        for f in wavs:
            (tmp / "wav" / f.name).symlink_to(f)
        t0 = time.perf_counter()
        write_shards(tmp / "png", tmp / "png_shards", max_count=1000, progress=False)
        write_shards(tmp / "wav", tmp / "wav_shards", max_count=500, progress=False)
        print(f"shards written in {time.perf_counter() - t0:.1f} s", flush=True)
        n_png, n_wav = len(list((tmp / "png_shards").glob("*.tar"))), len(list((tmp / "wav_shards").glob("*.tar")))
        t0 = time.perf_counter()
        preloaded = AudioFolder(str(tmp / "wav"), cache="memory")
        preload_s = time.perf_counter() - t0
        readers = [
            ("CIFAR-10", "npz (uint8 arrays in memory)", lambda: NpzImages(str(npz), limit=args.limit)),
            ("CIFAR-10", "image_folder (PNG files)", lambda: ImageFolder(str(tmp / "png"))),
            (
                "CIFAR-10",
                f"webdataset_images ({n_png} shards of PNG)",
                lambda: WebDatasetImages(str(tmp / "png_shards" / f"shard-{{000000..{n_png - 1:06d}}}.tar")),
            ),
            (
                "FSDD",
                "audio_folder, cache none (decode every epoch)",
                lambda: AudioFolder(str(tmp / "wav"), cache="none"),
            ),
            ("FSDD", f"audio_folder, cache memory (preloaded in {preload_s:.1f} s)", lambda: preloaded),
            (
                "FSDD",
                f"webdataset_audio ({n_wav} shards of wav)",
                lambda: WebDatasetAudio(str(tmp / "wav_shards" / f"shard-{{000000..{n_wav - 1:06d}}}.tar")),
            ),
        ]
        for workers in (0, 2):
            for data, reader, make in readers:
                rate, n = epoch_rate(make(), workers)
                rows.append(
                    {"data": data, "reader": reader, "workers": workers, "items": n, "items_per_s": round(rate, 1)}
                )
                print(rows[-1], flush=True)
    env = environment(torch.device("cpu"))
    lines = [
        f"# Reading shards vs folders ({env['cpu_count']} CPUs, torch {env['torch']}, load average "
        f"{env['load_average_1_5_15'][0]} at the end; one epoch, batch {BATCH}, decoded items/s)",
        "",
        "| data | reader | workers | items | items / s |",
        "|---|---|---:|---:|---:|",
    ]
    lines += [f"| {r['data']} | {r['reader']} | {r['workers']} | {r['items']} | {r['items_per_s']} |" for r in rows]
    write_results(Path(args.out), "bench_shards", {"environment": env, "rows": rows}, lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
