"""``ssl-toolkit embed CHECKPOINT INPUT --out OUT``: the representation of a user's own files.

CHECKPOINT is anything ``eval --checkpoint`` accepts (:mod:`ssl_toolkit.eval.models`). INPUT is a folder,
searched recursively for the files of the encoder's modality (audio or image, by extension), or an EVAR-style
metadata CSV (a ``file_name`` column, relative to the CSV's folder or to ``--root``). OUT, a new folder, receives:

- ``embeddings.npz``: ``embeddings`` float32 (N, D) and ``files`` (N,) str — relative to the INPUT folder, or
  as the CSV writes them — in the same order. With ``--frames`` (audio) also ``frames`` float32 (ΣT, D),
  ``timestamps`` float32 (ΣT,) in milliseconds (HEAR's convention) and ``frame_offsets`` int64 (N + 1,): the
  frames of file i are ``frames[frame_offsets[i]:frame_offsets[i + 1]]``;
- ``manifest.json``: the checkpoint's sha256, the encoder and front-end specs, the pre_norm statistics used, the
  settings, toolkit and torch versions, the command line and the throughput;
- ``skipped.csv``: each file that could not be read, with the reason (``--on-bad-file fail`` stops instead).

One code path with evaluation and the HEAR module: scene embeddings are
:func:`ssl_toolkit.audio.embedding.embed_clips` (``unit_sec`` pieces, mean over pieces, as ``eval``) or
:func:`ssl_toolkit.eval.image.encode_batch` (the card's front end, as ``eval``); timestamp embeddings are
:func:`ssl_toolkit.hear.get_timestamp_embeddings`. Audio needs pre_norm statistics: the checkpoint's, else
measured on up to 10,000 pieces of the input (as EVAR measures them on a task's training clips).
Files are decoded ``chunk`` at a time, so memory holds one chunk of decoded input whatever N is.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from . import __version__
from .atomic import atomic_write, atomic_write_text
from .devices import precision_autocast
from .eval.errors import EvalError

log = logging.getLogger("ssl_toolkit.embed")

MANIFEST_FORMAT = "ssl_toolkit.embeddings/1"
OUTPUT_FILES = ("embeddings.npz", "manifest.json", "skipped.csv")
MAX_STATS_FILES = 1000
"""pre_norm statistics measured on the input use the pieces of at most this many files (random, seed 0)."""


@dataclass
class EmbedSettings:
    frames: bool = False
    unit_sec: Optional[float] = None     # audio pieces; default: the training recipe's, else 1.0 (BYOL-A)
    long_clips: str = "chunks"
    image_size: Optional[int] = None     # resize + centre crop; default: each image at its own size
    batch_size: int = 64
    chunk: int = 256                     # files decoded at a time
    precision: str = "fp32"
    device: str = "auto"
    on_bad_file: str = "skip"
    progress: bool = True


@dataclass
class Inputs:
    root: Path                            # the folder, or the CSV's folder
    paths: list[Path]
    names: list[str]                      # what ``files`` stores
    source: str                           # 'folder' | 'csv'


@dataclass
class _Output:
    """What has been embedded so far: scene rows per chunk, frames spooled to a file in OUT."""

    out: Path
    names: list[str] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    frame_counts: list[int] = field(default_factory=list)
    timestamps: list[np.ndarray] = field(default_factory=list)
    frames_file: Optional[io.BufferedWriter] = None
    frame_dim: int = 0

    def add_frames(self, frames: np.ndarray, ts: np.ndarray) -> None:
        if self.frames_file is None:
            self.frames_file = open(self.out / ".frames.f32.tmp", "wb")
        self.frame_dim = frames.shape[1]
        self.frames_file.write(np.ascontiguousarray(frames, dtype=np.float32).tobytes())
        self.frame_counts.append(frames.shape[0])
        self.timestamps.append(ts.astype(np.float32))


def list_inputs(spec: str | Path, modality: str, root: Optional[str | Path] = None) -> Inputs:
    """The files INPUT names, in a fixed order (sorted paths for a folder, the CSV's order); a CSV's file names
    resolve against ``root`` (relative to the CSV's folder; default: that folder)."""
    from .audio.dataset import AUDIO_EXTENSIONS
    from .audio.metadata import read_metadata_csv
    from .image.datasets import IMAGE_EXTENSIONS

    path = Path(spec).expanduser()
    if path.is_dir():
        exts = AUDIO_EXTENSIONS if modality == "audio" else IMAGE_EXTENSIONS
        paths = sorted(p for p in path.rglob("*") if p.suffix.lower() in exts and p.is_file()
                       and not p.name.startswith("."))
        if not paths:
            raise EvalError(f"embed: no {modality} files ({', '.join(exts)}) found in {path}")
        return Inputs(path, paths, [p.relative_to(path).as_posix() for p in paths], "folder")
    if path.is_file() and path.suffix.lower() == ".csv":
        try:
            table = read_metadata_csv(path)
        except (OSError, ValueError) as e:
            raise EvalError(f"embed: {e}") from None
        names = [r["file_name"] for r in table.rows]
        if not names:
            raise EvalError(f"embed: {path} lists no files")
        base = path.parent / Path(root).expanduser() if root is not None else path.parent
        return Inputs(base, [base / n for n in names], names, "csv")
    what = "not a folder or a .csv file" if path.exists() else "no such file or directory"
    raise EvalError(f"embed: INPUT {spec}: {what} (give a folder of files or an EVAR-style metadata CSV)")


def _check_out(out: Path, overwrite: bool) -> None:
    from .eval.runner import check_output_folder

    present = [n for n in OUTPUT_FILES if (out / n).exists()]
    if present and not overwrite:
        raise EvalError(f"embed: --out {out} already holds embeddings ({', '.join(present)}); choose a new "
                        "folder or pass --overwrite")
    check_output_folder(out, "embed: ")


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def _read(inputs: Inputs, rows, read, on_bad_file: str, skipped: list) -> tuple[list, list[int]]:
    """Decode ``rows`` of the input with ``read(path)``: (items, their rows); bad files go to ``skipped``
    (``on_bad_file: fail``: an error)."""
    items, kept = [], []
    for i in rows:
        try:
            items.append(read(inputs.paths[i]))
            kept.append(i)
        except Exception as e:  # noqa: BLE001 - any decoder failure is a bad file
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            if on_bad_file == "fail":
                raise EvalError(f"embed: cannot use {inputs.paths[i]}: {reason} (--on-bad-file skip leaves "
                                "unreadable files out)") from None
            skipped.append((inputs.names[i], reason))
            if len(skipped) <= 10:
                log.warning("embed: skipped %s: %s", inputs.paths[i], reason)
    return items, kept


def _measure_prenorm(model, inputs: Inputs, settings: EmbedSettings, sample_rate: int, unit_sec: float,
                     device: torch.device) -> dict:
    """pre_norm statistics of the input (the checkpoint has none): up to MAX_STATS_FILES random files."""
    from .audio.dataset import load_audio
    from .audio.embedding import Pieces, split_frontend
    from .audio.stats import prenorm_stats
    from .eval.audio_embedder import MAX_STATS_PIECES
    from .views import Pipeline

    upstream, prenorm, _ = split_frontend(model.frontend)
    chosen = np.sort(np.random.default_rng(0).permutation(len(inputs.paths))[:MAX_STATS_FILES])

    def batches():  # bad files are left out here; the embedding pass records them
        for rows in _chunks(len(chosen), settings.chunk):
            waves, _ = _read(inputs, chosen[rows.start:rows.stop], lambda p: load_audio(p, sample_rate), "skip", [])
            pieces = Pieces.cut(waves, unit_sec, sample_rate, settings.long_clips)
            for idx in pieces.batches(settings.batch_size):
                yield pieces.batch(idx).to(device)

    try:
        with torch.inference_mode():
            stats = prenorm_stats(batches(), Pipeline(list(upstream)), MAX_STATS_PIECES)
    except ValueError as e:
        raise EvalError(f"embed: {e}") from None
    prenorm.mean.fill_(stats["mean"])
    prenorm.std.fill_(stats["std"])
    return {"source": "measured on the input", "mean": stats["mean"], "std": stats["std"],
            "n_pieces": stats["n_items"]}


def _check_unit(model, unit_sec: float, sample_rate: int, device) -> None:
    """A piece of ``unit_sec`` must give the encoder at least one frame (a clear error instead of a crash)."""
    from .views import Pipeline

    probe = torch.zeros(1, max(1, int(round(unit_sec * sample_rate))), device=device)
    try:
        with torch.inference_mode():
            model.encoder(Pipeline(list(model.frontend))(probe))
    except (RuntimeError, ValueError, IndexError) as e:
        raise EvalError(f"embed: --unit-sec {unit_sec}: a piece this short does not fit the encoder "
                        f"({str(e).splitlines()[0]}); use a longer unit") from None


def _embed_audio(model, inputs: Inputs, settings: EmbedSettings, unit_sec: float, device, output: _Output,
                 bar) -> dict:
    from .audio.dataset import load_audio
    from .audio.embedding import embed_clips, frontend_sample_rate, split_frontend
    from .hear import get_timestamp_embeddings, hear_model

    sample_rate = frontend_sample_rate(model.frontend)
    _, prenorm, _ = split_frontend(model.frontend)
    if prenorm is None:
        stats = {"source": "none (the front end has no pre_norm)"}
    elif bool(prenorm.ready):
        stats = {"source": "checkpoint", "mean": float(prenorm.mean), "std": float(prenorm.std)}
    else:
        stats = _measure_prenorm(model, inputs, settings, sample_rate, unit_sec, device)
    _check_unit(model, unit_sec, sample_rate, device)
    hear = hear_model(model, "embed") if settings.frames else None
    for rows in _chunks(len(inputs.paths), settings.chunk):
        waves, kept = _read(inputs, rows, lambda p: load_audio(p, sample_rate), settings.on_bad_file, output.skipped)
        if waves:
            output.rows.append(embed_clips(waves, model.encoder, model.frontend, sample_rate, unit_sec,
                                           settings.long_clips, device=device, batch_size=settings.batch_size,
                                           precision=settings.precision))
            output.names.extend(inputs.names[i] for i in kept)
        if hear is not None:
            for wave in waves:
                with torch.inference_mode(), precision_autocast(device, settings.precision):
                    frames, ts = get_timestamp_embeddings(torch.from_numpy(wave)[None].to(device), hear)
                output.add_frames(frames[0].float().cpu().numpy(), ts[0].cpu().numpy())
        del waves  # before the next chunk is decoded: one chunk of audio in memory
        bar.update(len(rows))
    info = {"sample_rate": sample_rate, "unit_sec": unit_sec, "long_clips": settings.long_clips, "prenorm": stats}
    if hear is not None:
        info["frames"] = {"timestamps": "ms, centre of the log-mel frames each embedding pools (HEAR)",
                          "hop_length": hear.hop_length}
    return info


def _embed_images(model, inputs: Inputs, settings: EmbedSettings, device, output: _Output, bar) -> dict:
    from .eval.image import encode_batch
    from .image.datasets import decode_image

    for rows in _chunks(len(inputs.paths), settings.chunk):
        images, kept = _read(inputs, rows, lambda p: decode_image(p, settings.image_size), settings.on_bad_file,
                             output.skipped)
        by_size: dict[tuple, list[int]] = {}
        for j, img in enumerate(images):
            by_size.setdefault(tuple(img.shape), []).append(j)
        out = np.zeros((len(images), model.feature_dim), dtype=np.float32)
        for group in by_size.values():
            for s in range(0, len(group), settings.batch_size):
                idx = group[s:s + settings.batch_size]
                x = torch.stack([images[j] for j in idx]).to(device)
                out[idx] = encode_batch(model, x, device, settings.precision)
        if images:
            output.rows.append(out)
            output.names.extend(inputs.names[i] for i in kept)
        del images
        bar.update(len(rows))
    return {"image_size": settings.image_size or "each image at its own size"}


def _write(output: _Output, dim: int) -> None:
    arrays = {"embeddings": np.concatenate(output.rows) if output.rows else np.zeros((0, dim), np.float32),
              "files": np.asarray(output.names, dtype=str)}
    spool = output.out / ".frames.f32.tmp"
    try:
        if output.frames_file is not None:
            output.frames_file.close()
            total = int(sum(output.frame_counts))
            arrays["frames"] = (np.memmap(spool, dtype=np.float32, mode="r", shape=(total, output.frame_dim))
                                if total else np.zeros((0, dim), np.float32))
            arrays["timestamps"] = np.concatenate(output.timestamps)
            arrays["frame_offsets"] = np.concatenate([[0], np.cumsum(output.frame_counts)]).astype(np.int64)
        atomic_write(output.out / "embeddings.npz", lambda f: np.savez(f, **arrays))  # memmap: streamed
    finally:
        spool.unlink(missing_ok=True)
    if output.skipped:
        text = io.StringIO()
        csv.writer(text).writerows([("file", "reason"), *output.skipped])
        atomic_write_text(output.out / "skipped.csv", text.getvalue())
    else:
        (output.out / "skipped.csv").unlink(missing_ok=True)


def run_embed(checkpoint: str, input_spec: str | Path, out: str | Path, settings: EmbedSettings,
              encoder: Optional[dict] = None, frontend: Optional[list] = None, overwrite: bool = False,
              command: Optional[list[str]] = None, root: Optional[str | Path] = None) -> dict:
    """Embed every file of ``input_spec`` with ``checkpoint`` into ``out``; returns the manifest."""
    from tqdm.auto import tqdm

    from .devices import resolve_device
    from .eval.models import make_models, resolve_checkpoint
    from .eval.schema import ModelSpec
    from .recipe import Component, import_components

    import_components()
    out = Path(out).expanduser()
    _check_out(out, overwrite)
    try:
        device = resolve_device(settings.device)
    except ValueError as e:
        raise EvalError(f"embed: --{e}") from None
    source = resolve_checkpoint(checkpoint)
    spec = ModelSpec(encoder=Component(encoder) if encoder else None,
                     frontend=[Component(c) for c in frontend] if frontend else None)
    model, _ = make_models(source, spec, want_random=False, prenorm="checkpoint")
    model.to(device)
    modality = getattr(model.encoder, "modality", None)
    if modality not in ("audio", "image"):
        raise EvalError(f"embed: encoder {model.encoder_spec['name']!r} takes {modality or 'unknown'} input; "
                        "embed reads audio and image files")
    if settings.frames and modality != "audio":
        raise EvalError("embed: --frames gives timestamp embeddings of audio; this encoder is an image encoder")
    inputs = list_inputs(input_spec, modality, root)
    out.mkdir(parents=True, exist_ok=True)
    output = _Output(out)
    start = time.perf_counter()
    with tqdm(total=len(inputs.paths), desc="embed", unit="file", disable=not settings.progress) as bar:
        if modality == "audio":
            unit_sec = settings.unit_sec or _training_unit_sec(source.recipe)
            info = _embed_audio(model, inputs, settings, unit_sec, device, output, bar)
        else:
            info = _embed_images(model, inputs, settings, device, output, bar)
    seconds = time.perf_counter() - start
    if not output.names:
        raise EvalError(f"embed: none of the {len(inputs.paths)} files could be read (see the warnings above)")
    _write(output, model.feature_dim)
    manifest = {
        "format": MANIFEST_FORMAT, "checkpoint": checkpoint, "checkpoint_kind": source.kind,
        "checkpoint_path": str(source.path.resolve()) if source.path else None,
        "checkpoint_sha256": source.checksum or None, "encoder": model.encoder_spec,
        "frontend": model.frontend_spec, "frontend_source": model.source, "modality": modality,
        "feature_dim": model.feature_dim, "input": str(Path(input_spec).expanduser().resolve()),
        "input_kind": inputs.source, "files_root": str(inputs.root.resolve()), "n_files": len(output.names),
        "n_skipped": len(output.skipped),
        **info, "precision": settings.precision, "device": str(device), "batch_size": settings.batch_size,
        "seconds": round(seconds, 3), "files_per_second": round(len(inputs.paths) / max(seconds, 1e-9), 2),
        "toolkit_version": __version__, "torch_version": torch.__version__,
        "command": " ".join(command if command is not None else sys.argv),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "notes": source.notes,
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1, default=str) + "\n")
    return manifest


def _training_unit_sec(recipe: Optional[dict]) -> float:
    """The training segment length of a recipe (``data.dataset.unit_sec``), else BYOL-A's 1 s."""
    try:
        return float(recipe["data"]["dataset"]["unit_sec"])
    except (KeyError, TypeError, ValueError):
        return 1.0
