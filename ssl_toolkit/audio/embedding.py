"""Scene embeddings of audio clips: clips → ``unit_sec`` pieces → front end → encoder → mean over pieces.

A clip no longer than ``unit_sec`` is one piece, zero-padded to ``unit_sec``; a longer one is cut
into consecutive pieces (``long_clips: chunks``; the last piece ends with the clip), embedded whole
(``whole``) or cropped to its start (``crop``). Pieces of equal size are batched together; the front
end runs in fp32, the encoder under bf16 autocast when ``precision`` is ``bf16``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch

from ..devices import precision_autocast
from ..views import Pipeline
from .augment import PreNorm

MAX_PEAK = 2.0
"""Audio is float in [-1, 1]; a peak above this (headroom for resampling overshoot) is integer PCM passed as float."""


def check_waveforms(waves, names=None, what: str = "audio") -> None:
    """What the embedding entry points accept: each clip a 1-D array (or each row of a 2-D one) of real
    floating-point samples, finite, with peak ≤ MAX_PEAK. ValueError/TypeError names the first clip at fault."""
    if isinstance(waves, torch.Tensor) and waves.ndim == 2 and waves.dtype.is_floating_point and waves.numel():
        batch_low, batch_high = torch.aminmax(waves)  # NaN propagates, so NaN and ±inf both fail the bound
        if bool((batch_low >= -MAX_PEAK) & (batch_high <= MAX_PEAK)):
            return  # the whole batch in one pass (one host sync on CUDA); otherwise find the clip below
    for i, wave in enumerate(waves):
        name = names[i] if names is not None else f"clip {i}"
        dtype = wave.dtype
        floating = dtype.is_floating_point if isinstance(dtype, torch.dtype) else np.issubdtype(dtype, np.floating)
        if not floating:
            raise TypeError(
                f"{what}: {name} has {dtype} samples; expected floating-point audio in [-1, 1] "
                "(divide 16-bit PCM by 32768)"
            )
        if wave.ndim != 1:
            raise ValueError(f"{what}: {name} has shape {tuple(wave.shape)}; expected mono samples (n_samples,)")
        if wave.shape[0] == 0:
            continue
        samples = wave if isinstance(wave, torch.Tensor) else torch.from_numpy(np.asarray(wave))
        low, high = (float(v) for v in torch.aminmax(samples))
        if low >= -MAX_PEAK and high <= MAX_PEAK:
            continue
        if not bool(torch.isfinite(samples).all()):
            raise ValueError(f"{what}: {name} contains NaN or inf samples")
        raise ValueError(
            f"{what}: {name} peaks at {max(-low, high):.4g}; expected audio in [-1, 1] (integer PCM? "
            "divide 16-bit samples by 32768)"
        )


def split_frontend(frontend: list) -> tuple[list, Optional[PreNorm], list]:
    """(ops before pre_norm, the pre_norm op or None, ops after it)."""
    for i, op in enumerate(frontend):
        if isinstance(op, PreNorm):
            return frontend[:i], op, frontend[i + 1 :]
    return list(frontend), None, []


def frontend_sample_rate(frontend: list, default: int = 16000) -> int:
    """The sample rate the front end expects (its first op with a ``sample_rate``)."""
    for op in frontend:
        rate = getattr(op, "sample_rate", None)
        if rate is not None:
            return int(rate)
    return default


def piece_spans(n: int, unit: int, long_clips: str) -> list[tuple[int, int]]:
    """(start, length) of the pieces of an ``n``-sample clip that are embedded and averaged; a piece
    shorter than ``unit`` is zero-padded to ``unit``."""
    if n <= unit:
        return [(0, n)]
    if long_clips == "crop":
        return [(0, unit)]
    if long_clips == "whole":
        return [(0, n)]
    starts = list(range(0, n - unit + 1, unit))
    if starts[-1] != n - unit:
        starts.append(n - unit)  # the last piece ends with the clip (overlapping the one before)
    return [(s, unit) for s in starts]


@dataclass
class Pieces:
    """Every piece of every clip, materialized batch by batch."""

    waves: list
    unit: int
    clip: np.ndarray  # owner clip of each piece
    start: np.ndarray
    length: np.ndarray

    @classmethod
    def cut(cls, waves: list, unit_sec: float, sample_rate: int, long_clips: str) -> "Pieces":
        unit = int(round(unit_sec * sample_rate))
        clip, start, length = [], [], []
        for i, w in enumerate(waves):
            for s, n in piece_spans(w.shape[0], unit, long_clips):
                clip.append(i)
                start.append(s)
                length.append(n)
        return cls(
            waves,
            unit,
            np.asarray(clip, dtype=np.int64),
            np.asarray(start, dtype=np.int64),
            np.asarray(length, dtype=np.int64),
        )

    def __len__(self) -> int:
        return len(self.clip)

    def size(self, i: int) -> int:
        return max(int(self.length[i]), self.unit)

    def batch(self, idx) -> torch.Tensor:
        size = self.size(idx[0])
        out = np.zeros((len(idx), size), dtype=np.float32)
        for row, i in enumerate(idx):
            s, n = int(self.start[i]), int(self.length[i])
            out[row, :n] = self.waves[self.clip[i]][s : s + n]
        return torch.from_numpy(out)

    def batches(self, batch_size: int, subset: Optional[np.ndarray] = None):
        """Index batches of equal-size pieces (in order of size, then position)."""
        idx_all = np.arange(len(self)) if subset is None else np.asarray(subset)
        by_size: dict[int, list[int]] = {}
        for i in idx_all:
            by_size.setdefault(self.size(int(i)), []).append(int(i))
        for size in sorted(by_size):
            idx = by_size[size]
            for s in range(0, len(idx), batch_size):
                yield idx[s : s + batch_size]


def frontend_batches(
    waves: list,
    frontend: list,
    sample_rate: int,
    unit_sec: float,
    long_clips: str = "chunks",
    *,
    device="cpu",
    batch_size: int = 64,
    desc: str = "embedding",
    progress: bool = False,
):
    """Yields (owner clip of each piece, fp32 front-end output) for batches of equal-size pieces of ``waves``
    (the input of :func:`embed_batches`; the front end has no weights, so a caller may keep the list)."""
    from tqdm.auto import tqdm

    pieces = Pieces.cut(waves, unit_sec, sample_rate, long_clips)
    front, device = Pipeline(list(frontend)), torch.device(device)
    for idx in tqdm(list(pieces.batches(batch_size)), desc=desc, unit="batch", disable=not progress, leave=False):
        with torch.inference_mode():
            x = front(pieces.batch(idx).to(device))  # fp32, outside autocast
        yield pieces.clip[idx], x


def embed_batches(
    batches, encoder: Callable[[torch.Tensor], torch.Tensor], n_clips: int, *, precision: str = "fp32"
) -> np.ndarray:
    """(n_clips, D) float32: per clip, the mean of ``encoder(x)`` over its pieces in ``batches`` of
    (owner clip, front-end output)."""
    out: Optional[np.ndarray] = None
    counts = np.zeros(n_clips, dtype=np.float64)
    with torch.inference_mode():
        for clip, x in batches:
            with precision_autocast(x.device, precision):
                y = encoder(x)
            y64 = y.float().cpu().numpy().astype(np.float64)
            if out is None:
                out = np.zeros((n_clips, y64.shape[1]), dtype=np.float64)
            np.add.at(out, clip, y64)
            np.add.at(counts, clip, 1.0)
    if out is None:
        raise ValueError("embedding: no clips to embed (the batches were empty)")
    return (out / counts[:, None]).astype(np.float32)


def embed_clips(
    waves: list,
    encoder: Callable[[torch.Tensor], torch.Tensor],
    frontend: list,
    sample_rate: int,
    unit_sec: float,
    long_clips: str = "chunks",
    *,
    device="cpu",
    batch_size: int = 64,
    precision: str = "fp32",
    desc: str = "embedding",
    progress: bool = False,
    names: Optional[list] = None,
) -> np.ndarray:
    """(N, D) float32 scene embeddings of ``waves`` (float32 mono arrays at ``sample_rate``): per clip,
    the mean over its pieces of ``encoder(frontend(pieces))``. The clips must pass :func:`check_waveforms`
    (an error names the clip by ``names``); zero clips give a (0, 0) array."""
    check_waveforms(waves, names, what="embed_clips")
    if not waves:
        return np.zeros((0, 0), dtype=np.float32)
    batches = frontend_batches(
        waves,
        frontend,
        sample_rate,
        unit_sec,
        long_clips,
        device=device,
        batch_size=batch_size,
        desc=desc,
        progress=progress,
    )
    return embed_batches(batches, encoder, len(waves), precision=precision)
