"""``ssl-toolkit shard INPUT OUT --max-count N``: WebDataset tar shards from a folder or an EVAR-style CSV.

Each file becomes one sample (the ``webdataset`` package's ShardWriter): ``KEY.EXT`` holds the file's bytes as
they are (audio stays encoded flac/wav/..., images their jpg/png bytes), ``KEY.path`` its name relative to INPUT
(or as the CSV writes it) and ``KEY.cls`` the label id when labels are known (a folder of one sub-folder per
class, or the CSV's label column; ids are the sorted class names' positions, numbered as the folder datasets and
evaluation number them). ``OUT/shards.json`` lists every shard with its sample count, the class names and the
source, so ``webdataset_images`` / ``webdataset_audio`` know the epoch size without reading the shards.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Optional

from .atomic import atomic_write_text


class ShardError(ValueError):
    """What ``ssl-toolkit shard`` cannot do, naming the input or output."""


def list_files(source: Path, modality: Optional[str], root: Optional[str], label_column: str):
    """(modality, paths, names, labels, classes) of a folder or a metadata CSV."""
    from .audio.dataset import AUDIO_EXTENSIONS
    from .audio.metadata import class_ids, read_metadata_csv
    from .data import visible_files
    from .image.decode import IMAGE_EXTENSIONS

    exts = {"audio": AUDIO_EXTENSIONS, "image": IMAGE_EXTENSIONS}
    if source.is_file() and source.suffix.lower() == ".csv":
        try:
            table = read_metadata_csv(source)
        except (OSError, ValueError) as e:
            raise ShardError(str(e)) from None
        base = source.parent / root if root else source.parent
        names = [r["file_name"] for r in table.rows]
        paths = [base / n for n in names]
        raw: list[str | None] = (
            [r[label_column] for r in table.rows] if label_column in table.columns else [None] * len(names)
        )
        labels, classes = class_ids(raw)
    elif source.is_dir():
        found = visible_files(source)
        paths, names, labels, classes = found, [p.relative_to(source).as_posix() for p in found], [], []
    else:
        raise ShardError(f"INPUT {source}: {'not a folder or a .csv file' if source.exists() else 'not found'}")
    if modality is None:
        counts = {m: sum(Path(n).suffix.lower() in e for n in names) for m, e in exts.items()}
        modality = max(counts, key=lambda m: counts[m])
        if counts[modality] == 0:
            raise ShardError(
                f"INPUT {source}: no audio ({', '.join(AUDIO_EXTENSIONS)}) or image "
                f"({', '.join(IMAGE_EXTENSIONS)}) files"
            )
    keep = [i for i, n in enumerate(names) if Path(n).suffix.lower() in exts[modality]]
    paths, names = [paths[i] for i in keep], [names[i] for i in keep]
    if source.is_dir():
        parts = [Path(n).parts for n in names]
        if names and all(len(p) > 1 for p in parts):  # one sub-folder per class
            labels, classes = class_ids([p[0] for p in parts])
        else:
            labels = [-1] * len(names)
    else:
        labels = [labels[i] for i in keep]
    if not names:
        raise ShardError(f"INPUT {source}: no {modality} files")
    return modality, paths, names, labels, classes


def write_shards(
    source: str | Path,
    out: str | Path,
    max_count: int = 1000,
    modality: Optional[str] = None,
    root: Optional[str] = None,
    label_column: str = "label",
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """Write ``OUT/shard-NNNNNN.tar`` (at most ``max_count`` samples each) and ``OUT/shards.json``; returns the
    index."""
    import webdataset as wds
    from tqdm.auto import tqdm

    from .shards import INDEX_FILE, INDEX_FORMAT

    source, out = Path(source).expanduser(), Path(out).expanduser()
    if max_count < 1:
        raise ShardError(f"--max-count must be >= 1, got {max_count}")
    if out.is_dir() and (list(out.glob("shard-*.tar")) or (out / INDEX_FILE).exists()) and not overwrite:
        raise ShardError(f"OUT {out} already holds shards; choose a new folder or pass --overwrite")
    modality, paths, names, labels, classes = list_files(source, modality, root, label_column)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("shard-*.tar"):
        old.unlink()
    start, skipped = time.perf_counter(), []
    counts: dict[str, int] = {}
    # an integer mtime: no PAX header per member (a float one needs it: twice the headers to parse when reading),
    # and the same input gives byte-identical shards
    with wds.ShardWriter(str(out / "shard-%06d.tar"), maxcount=max_count, verbose=0, mtime=0) as sink:
        for i, (path, name, label) in enumerate(
            tqdm(list(zip(paths, names, labels)), desc="shard", unit="file", disable=not progress)
        ):
            try:
                data = path.read_bytes()
            except OSError as e:
                skipped.append((name, e.strerror or str(e)))
                continue
            sample = {"__key__": f"{i:08d}", Path(name).suffix.lower().lstrip("."): data, "path": name}
            if label >= 0:
                sample["cls"] = int(label)
            sink.write(sample)
            shard = Path(sink.fname).name
            counts[shard] = counts.get(shard, 0) + 1
    index = {
        "format": INDEX_FORMAT,
        "modality": modality,
        "source": str(source.resolve()),
        "count": sum(counts.values()),
        "classes": classes,
        "shards": [{"name": n, "count": c} for n, c in sorted(counts.items())],
        "skipped": [{"file": n, "reason": r} for n, r in skipped],
        "seconds": round(time.perf_counter() - start, 3),
    }
    atomic_write_text(out / INDEX_FILE, json.dumps(index, indent=1) + "\n")
    return index


def _cmd_shard(args) -> int:
    try:
        index = write_shards(
            args.input,
            args.out,
            args.max_count,
            args.modality,
            args.root,
            args.label_column,
            args.overwrite,
            progress=not args.quiet,
        )
    except ShardError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not args.quiet:
        urls = Path(args.out) / ("shard-{000000..%06d}.tar" % (len(index["shards"]) - 1))
        print(
            f"{index['count']} {index['modality']} files → {len(index['shards'])} shards "
            f"({len(index['skipped'])} unreadable); train with data.dataset.urls={urls}"
        )
    return 0


def add_shard_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "shard", help="write WebDataset tar shards from a folder or an EVAR CSV", description=__doc__.split("\n\n")[1]
    )
    p.add_argument("input", help="a folder (recursive) or an EVAR-style metadata CSV (file_name[, label])")
    p.add_argument("out", help="output folder for shard-NNNNNN.tar and shards.json")
    p.add_argument("--max-count", type=int, default=1000, help="samples per shard (default 1000)")
    p.add_argument("--modality", choices=("audio", "image"), help="default: the kind most files in INPUT are")
    p.add_argument("--root", help="CSV input: where file_name resolves (relative to the CSV's folder)")
    p.add_argument("--label-column", default="label", help="CSV input: the label column (default label)")
    p.add_argument("--overwrite", action="store_true", help="replace the shards already in OUT")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_shard)
