"""What the embedding entry points read: the files an input names, in a fixed order (a folder searched recursively
for one modality's files, by extension, or an EVAR-style metadata CSV; ``ssl-toolkit embed``, ``Encoder.list_files``),
and ``Encoder.embed``'s inputs — paths, a folder, a CSV, arrays or tensors — as float32 waves or uint8 images."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .eval.errors import EvalError
from .quoting import first_line


@dataclass
class Inputs:
    root: Path  # the folder, or the CSV's folder
    paths: list[Path]
    names: list[str]  # what ``files`` stores
    source: str  # 'folder' | 'csv'


def list_inputs(spec: str | Path, modality: str, root: Optional[str | Path] = None) -> Inputs:
    """The files INPUT names, in a fixed order (sorted paths for a folder, the CSV's order); a CSV's file names
    resolve against ``root`` (relative to the CSV's folder; default: that folder)."""
    from .audio.dataset import AUDIO_EXTENSIONS
    from .audio.metadata import read_metadata_csv
    from .data import visible_files
    from .image.decode import IMAGE_EXTENSIONS

    path = Path(spec).expanduser()
    if path.is_dir():
        exts = AUDIO_EXTENSIONS if modality == "audio" else IMAGE_EXTENSIONS
        paths = visible_files(path, exts)  # hidden files and folders are left out, as image_folder leaves them out
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


MAX_CHANNELS = 8
"""A 2-D audio array whose rows have at most this many samples is (samples, channels) audio, not clips."""


def _not_a_folder(item, what: str) -> None:
    if Path(item).expanduser().is_dir():
        raise EvalError(f"{what}: {item} is a folder inside a list; pass the folder itself (or its files)")


def _not_channels(waves, what: str) -> None:
    """A 2-D audio array is (clips, samples): refuse one that looks like (samples, channels)."""
    if waves.ndim == 2 and waves.shape[1] <= MAX_CHANNELS < waves.shape[0]:
        raise ValueError(
            f"{what}: a {tuple(waves.shape)} array is read as {waves.shape[0]} clips of {waves.shape[1]} samples; "
            "for (samples, channels) audio pass a mono wave (x.mean(1)), for a batch (clips, samples)"
        )


def input_items(inputs, modality: str, what: str = "embed") -> list:
    """``inputs`` as a list of items (paths or arrays): a folder or CSV becomes its files, a batch array its rows
    (audio: 2-D; images: 4-D); ``what`` names the caller in errors."""
    if isinstance(inputs, (str, os.PathLike)):
        path = Path(inputs).expanduser()
        return list(list_inputs(path, modality).paths) if path.is_dir() or path.suffix.lower() == ".csv" else [path]
    batch_ndim = 2 if modality == "audio" else 4
    if isinstance(inputs, (np.ndarray, torch.Tensor)):
        if modality == "audio":
            _not_channels(inputs, what)
        return list(inputs) if inputs.ndim == batch_ndim else [inputs]
    if isinstance(inputs, (list, tuple)):
        return list(inputs)
    raise TypeError(f"{what}: expected paths, a folder, arrays or a list of them; got {type(inputs).__name__}")


def read_waves(inputs, sample_rate: int, what: str = "embed") -> tuple[list, list[str]]:
    """(float32 mono arrays at ``sample_rate``, a name per clip for errors); ``what`` names the caller."""
    from .audio.dataset import load_audio

    waves, names = [], []
    for i, item in enumerate(input_items(inputs, "audio", what)):
        if isinstance(item, (str, os.PathLike)):
            _not_a_folder(item, what)
            try:
                waves.append(load_audio(item, sample_rate))
            except Exception as e:  # noqa: BLE001 - any decoder failure names the file
                raise EvalError(f"cannot read {item}: {first_line(e)}") from None
            names.append(str(item))
        else:
            wave = item.detach().cpu().numpy() if isinstance(item, torch.Tensor) else np.asarray(item)
            if wave.size == 0:
                raise ValueError(f"{what}: clip {i} has no samples")
            waves.append(wave)
            names.append(f"clip {i}")
    return waves, names


def wave_batch(waves, sample_rate: int) -> torch.Tensor:
    """Equal-length waves as one (B, T) tensor (a 1-D wave is a batch of one)."""
    if isinstance(waves, (np.ndarray, torch.Tensor)) and waves.ndim in (1, 2):
        _not_channels(waves, "embed_frames")
        batch = torch.as_tensor(waves)
        return batch[None] if batch.ndim == 1 else batch
    items, _ = read_waves(waves, sample_rate, "embed_frames")
    if not items:
        raise ValueError("embed_frames: no waves given")
    if len({len(w) for w in items}) > 1:
        raise ValueError(
            "embed_frames: the waves have different lengths; pass them one at a time (or pad them to one length)"
        )
    return torch.stack([torch.as_tensor(w) for w in items])


def read_images(inputs, image_size: Optional[int]) -> list[torch.Tensor]:
    """uint8 (C, H, W) tensors; paths decoded (with ``image_size``: shorter side resized, centre-cropped)."""
    from .image.decode import decode_image

    images = []
    for i, item in enumerate(input_items(inputs, "image")):
        if isinstance(item, (str, os.PathLike)):
            _not_a_folder(item, "embed")
            try:
                images.append(decode_image(Path(item), image_size))
            except Exception as e:  # noqa: BLE001 - any decoder failure names the file
                raise EvalError(f"cannot read {item}: {first_line(e)}") from None
            continue
        img = torch.as_tensor(np.asarray(item)) if not isinstance(item, torch.Tensor) else item
        if img.ndim != 3 or img.shape[0] not in (1, 3) or img.dtype != torch.uint8:
            raise ValueError(
                f"embed: image {i} is a {tuple(img.shape)} {img.dtype} array; expected uint8 (C, H, W), C = 3 "
                "(or 1 for a one-channel encoder), channels first as torchvision.io.decode_image gives"
            )
        images.append(img)
    return images
