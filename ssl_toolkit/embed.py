"""``ssl-toolkit embed CHECKPOINT INPUT --out OUT``: the representation of a user's own files.

CHECKPOINT is anything ``eval --checkpoint`` accepts (:mod:`ssl_toolkit.eval.checkpoints`). INPUT is a folder,
searched recursively for the files of the encoder's modality (audio or image, by extension), or an EVAR-style
metadata CSV (a ``file_name`` column, relative to the CSV's folder or to ``--root``). OUT, a new folder, receives:

- ``embeddings.npz``: ``embeddings`` float32 (N, D) and ``files`` (N,) str — relative to the INPUT folder, or
  as the CSV writes them — in the same order. With ``--frames`` (audio) also ``frames`` float32 (ΣT, D),
  ``timestamps`` float32 (ΣT,) in milliseconds (HEAR's convention) and ``frame_offsets`` int64 (N + 1,): the
  frames of file i are ``frames[frame_offsets[i]:frame_offsets[i + 1]]``;
- ``manifest.json``: the checkpoint's sha256, the encoder and front-end specs, the pre_norm statistics used, the
  settings, toolkit and torch versions, the command line and the throughput;
- ``skipped.csv``: each file that could not be read, with the reason (``--on-bad-file fail`` stops instead).

One code path with the Python API, evaluation and the HEAR module: the checkpoint is read by
:func:`ssl_toolkit.load_encoder` and every chunk of files goes through ``Encoder.embed`` (audio:
:func:`ssl_toolkit.audio.embedding.embed_clips`, ``unit_sec`` pieces — a shorter clip zero-padded to one —, mean
over pieces, as ``eval``; images: :func:`ssl_toolkit.eval.image.embed_images`, the card's front end, as ``eval``)
and ``Encoder.embed_frames`` (:func:`ssl_toolkit.hear.get_timestamp_embeddings`). Audio needs pre_norm statistics:
the checkpoint's, else measured on up to 10,000 pieces of the input (as EVAR measures them on a task's training
clips).
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
from typing import Any, Optional

import numpy as np
import torch

from . import __version__
from .atomic import atomic_write, atomic_write_text
from .eval.errors import EvalError
from .input_files import Inputs, list_inputs  # noqa: F401 - list_inputs re-exported
from .quoting import first_line

log = logging.getLogger("ssl_toolkit.embed")

MANIFEST_FORMAT = "ssl_toolkit.embeddings/1"
OUTPUT_FILES = ("embeddings.npz", "manifest.json", "skipped.csv")
MAX_STATS_FILES = 1000
"""pre_norm statistics measured on the input use the pieces of at most this many files, read in a random order
(seed 0) until MAX_STATS_PIECES pieces."""


@dataclass
class EmbedSettings:
    frames: bool = False
    unit_sec: Optional[float] = None  # audio pieces; default: the training recipe's, else 1.0 (BYOL-A)
    long_clips: str = "chunks"
    image_size: Optional[int] = None  # resize + centre crop; default: each image at its own size
    batch_size: int = 64
    chunk: int = 256  # files decoded at a time
    precision: str = "fp32"
    device: str = "auto"
    on_bad_file: str = "skip"
    progress: bool = True


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


def _check_out(out: Path, overwrite: bool) -> None:
    from .eval.runner import check_output_folder

    present = [n for n in OUTPUT_FILES if (out / n).exists()]
    if present and not overwrite:
        raise EvalError(
            f"embed: --out {out} already holds embeddings ({', '.join(present)}); choose a new "
            "folder or pass --overwrite"
        )
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
            reason = first_line(e)
            if on_bad_file == "fail":
                raise EvalError(
                    f"embed: cannot use {inputs.paths[i]}: {reason} (--on-bad-file skip leaves unreadable files out)"
                ) from None
            skipped.append((inputs.names[i], reason))
            if len(skipped) <= 10:
                log.warning("embed: skipped %s: %s", inputs.paths[i], reason)
    return items, kept


def _measure_prenorm(enc, inputs: Inputs, settings: EmbedSettings, unit_sec: float) -> dict:
    """pre_norm statistics of the input (the checkpoint has none): up to MAX_STATS_FILES random files."""
    from .audio.dataset import load_audio
    from .audio.embedding import Pieces, split_frontend
    from .audio.stats import prenorm_stats
    from .eval.audio_embedder import MAX_STATS_PIECES
    from .views import Pipeline

    upstream, prenorm, _ = split_frontend(list(enc.frontend.ops))
    if prenorm is None:
        raise EvalError("embed: the encoder's front end has no pre_norm to measure statistics for")
    # random order, not path order: the piece cap must not fill up with the first folders' (classes') files
    chosen = np.random.default_rng(0).permutation(len(inputs.paths))[:MAX_STATS_FILES]
    sample_rate = enc.sample_rate

    def batches():  # bad files are left out here; the embedding pass records them
        for rows in _chunks(len(chosen), settings.chunk):
            waves, _ = _read(inputs, chosen[rows.start : rows.stop], lambda p: load_audio(p, sample_rate), "skip", [])
            pieces = Pieces.cut(waves, unit_sec, sample_rate, settings.long_clips)
            for idx in pieces.batches(settings.batch_size):
                yield pieces.batch(idx).to(enc.device)

    try:
        with torch.inference_mode():
            stats = prenorm_stats(batches(), Pipeline(list(upstream)), MAX_STATS_PIECES)
    except ValueError as e:
        raise EvalError(f"embed: {e}") from None
    prenorm.mean.fill_(stats["mean"])
    prenorm.std.fill_(stats["std"])
    return {"source": "measured on the input", "mean": stats["mean"], "std": stats["std"], "n_pieces": stats["n_items"]}


def _embed_audio(enc, inputs: Inputs, settings: EmbedSettings, output: _Output, bar) -> dict:
    """Scene embeddings (and frames) of the input through ``enc.embed`` / ``enc.embed_frames``, a chunk at a time."""
    from .audio.dataset import load_audio

    unit_sec = settings.unit_sec or enc.unit_sec
    if enc._prenorm_op() is None:
        stats = {"source": "none (the front end has no pre_norm)"}
    elif enc.prenorm is not None:
        stats = {"source": "checkpoint", **enc.prenorm}
    else:
        stats = _measure_prenorm(enc, inputs, settings, unit_sec)
    enc.check_unit_sec(unit_sec, "embed: --unit-sec")
    for rows in _chunks(len(inputs.paths), settings.chunk):
        waves, kept = _read(
            inputs, rows, lambda p: load_audio(p, enc.sample_rate), settings.on_bad_file, output.skipped
        )
        if waves:
            output.rows.append(
                enc.embed(
                    waves,
                    batch_size=settings.batch_size,
                    precision=settings.precision,
                    unit_sec=unit_sec,
                    long_clips=settings.long_clips,
                )
            )
            output.names.extend(inputs.names[i] for i in kept)
        if settings.frames:
            for wave in waves:
                frames, ts = enc.embed_frames(wave, precision=settings.precision)
                output.add_frames(frames[0].cpu().numpy(), ts[0].cpu().numpy())
        del waves  # before the next chunk is decoded: one chunk of audio in memory
        bar.update(len(rows))
    info = {"sample_rate": enc.sample_rate, "unit_sec": unit_sec, "long_clips": settings.long_clips, "prenorm": stats}
    if settings.frames:
        from .audio.frames import hear_model

        info["frames"] = {
            "timestamps": "ms, centre of the log-mel frames each embedding pools (HEAR)",
            "hop_length": hear_model(enc, "embed").hop_length,
        }
    return info


def _embed_images(enc, inputs: Inputs, settings: EmbedSettings, output: _Output, bar) -> dict:
    from .image.decode import decode_image

    for rows in _chunks(len(inputs.paths), settings.chunk):
        images, kept = _read(
            inputs, rows, lambda p: decode_image(p, settings.image_size), settings.on_bad_file, output.skipped
        )
        if images:
            output.rows.append(enc.embed(images, batch_size=settings.batch_size, precision=settings.precision))
            output.names.extend(inputs.names[i] for i in kept)
        del images
        bar.update(len(rows))
    return {"image_size": settings.image_size or "each image at its own size"}


def _write(output: _Output, dim: int) -> None:
    arrays: dict[str, Any] = {
        "embeddings": np.concatenate(output.rows) if output.rows else np.zeros((0, dim), np.float32),
        "files": np.asarray(output.names, dtype=str),
    }
    spool = output.out / ".frames.f32.tmp"
    try:
        if output.frames_file is not None:
            output.frames_file.close()
            total = int(sum(output.frame_counts))
            arrays["frames"] = (
                np.memmap(spool, dtype=np.float32, mode="r", shape=(total, output.frame_dim))
                if total
                else np.zeros((0, dim), np.float32)
            )
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


def run_embed(
    checkpoint: str,
    input_spec: str | Path,
    out: str | Path,
    settings: EmbedSettings,
    encoder: Optional[dict] = None,
    frontend: Optional[list] = None,
    overwrite: bool = False,
    command: Optional[list[str]] = None,
    root: Optional[str | Path] = None,
) -> dict:
    """Embed every file of ``input_spec`` with ``checkpoint`` into ``out``; returns the manifest."""
    from tqdm.auto import tqdm

    from .devices import resolve_device
    from .encoder_source import read_encoder

    out = Path(out).expanduser()
    _check_out(out, overwrite)
    try:
        device = resolve_device(settings.device)
    except ValueError as e:
        raise EvalError(f"embed: --{e}") from None
    enc = read_encoder(checkpoint, "--checkpoint", device=str(device), encoder=encoder, frontend=frontend)
    modality = enc.modality
    if modality not in ("audio", "image"):
        raise EvalError(
            f"embed: encoder {enc.encoder_spec['name']!r} takes {modality or 'unknown'} input; "
            "embed reads audio and image files"
        )
    if settings.frames and modality != "audio":
        raise EvalError("embed: --frames gives timestamp embeddings of audio; this encoder is an image encoder")
    inputs = list_inputs(input_spec, modality, root)
    out.mkdir(parents=True, exist_ok=True)
    output = _Output(out)
    start = time.perf_counter()
    with tqdm(total=len(inputs.paths), desc="embed", unit="file", disable=not settings.progress) as bar:
        if modality == "audio":
            info = _embed_audio(enc, inputs, settings, output, bar)
        else:
            info = _embed_images(enc, inputs, settings, output, bar)
    seconds = time.perf_counter() - start
    if not output.names:
        raise EvalError(f"embed: none of the {len(inputs.paths)} files could be read (see the warnings above)")
    _write(output, enc.feature_dim)
    src = enc.source
    manifest = {
        "format": MANIFEST_FORMAT,
        "checkpoint": checkpoint,
        "checkpoint_kind": src["kind"],
        "checkpoint_path": str(Path(src["path"]).resolve()) if src["path"] else None,
        "checkpoint_sha256": src["sha256"],
        "encoder": enc.encoder_spec,
        "frontend": enc.frontend_spec,
        "frontend_source": src["card_origin"],
        "modality": modality,
        "feature_dim": enc.feature_dim,
        "input": str(Path(input_spec).expanduser().resolve()),
        "input_kind": inputs.source,
        "files_root": str(inputs.root.resolve()),
        "n_files": len(output.names),
        "n_skipped": len(output.skipped),
        **info,
        "precision": settings.precision,
        "device": str(device),
        "batch_size": settings.batch_size,
        "seconds": round(seconds, 3),
        "files_per_second": round(len(inputs.paths) / max(seconds, 1e-9), 2),
        "toolkit_version": __version__,
        "torch_version": torch.__version__,
        "command": " ".join(command if command is not None else sys.argv),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "notes": src["notes"],
    }
    atomic_write_text(out / "manifest.json", json.dumps(manifest, indent=1, default=str) + "\n")
    return manifest
