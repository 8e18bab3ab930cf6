"""Timestamp (frame) embeddings of audio in the HEAR 2021 convention, and the model object that carries them.

The machinery behind :mod:`ssl_toolkit.hear` (the HEAR API module) and ``Encoder.embed_frames``: an encoder's
frames (``forward_frames``), one every ``hop × frame_stride`` samples; when that exceeds 50 ms the audio is
embedded again shifted by a whole number of log-mel hops and the frames interleaved. A timestamp is the centre of
the log-mel frames its embedding pools.
"""

from __future__ import annotations

import warnings
from typing import Any, Tuple

import torch
from torch import Tensor, nn

from ..engine.build import feature_dim_of
from ..views import Pipeline
from .embedding import check_waveforms, split_frontend

BATCH = 8  # clips per forward pass
TIMESTAMP_MS = 50.0  # largest spacing of timestamp embeddings
WINDOW_FRAMES = 1536
"""Log-mel frames embedded at once (15.4 s at a 10 ms hop): a longer sound is embedded window by window, so memory
does not grow with its length."""
MARGIN_FRAMES = 64
"""Log-mel frames of context on each side of a window, dropped after the encoder: more than AudioNTT's receptive
field (22 log-mel frames) plus the STFT's reach (n_fft / 2 = 3.2 hops), so a window's kept frames equal the
whole-sound frames (up to float rounding)."""


class ClipNorm(nn.Module):
    """Standardize each clip's log-mel with its own mean and std (no dataset statistics known); ``mean``/``std``
    (n, 1, 1, 1) given: with those (the whole clip's, when it is embedded window by window)."""

    def __init__(self, mean: Tensor | None = None, std: Tensor | None = None):
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, x: Tensor, generator=None) -> Tensor:
        dims = tuple(range(1, x.ndim))
        mean = self.mean if self.mean is not None else x.mean(dim=dims, keepdim=True)
        std = self.std if self.std is not None else x.std(dim=dims, keepdim=True)
        return (x - mean) / std.clamp_min(1e-5)


def window_spans(n_mel: int, stride: int, window: int, margin: int) -> list[tuple[int, int, int, int]]:
    """(k0, k1, g0, g1) per window: output frames [k0, k1) come from log-mel frames [g0, g1) (margins included,
    g0 a multiple of ``stride``); the spans cover the n_mel // stride output frames once."""
    n_out, step = n_mel // stride, max(window // stride, 1)
    spans = []
    for k0 in range(0, n_out, step):
        k1 = min(n_out, k0 + step)
        spans.append((k0, k1, max(0, k0 * stride - margin), k1 * stride + margin))
    return spans


class HearModel(nn.Module):
    """Front end + encoder with the attributes the HEAR API asks for."""

    encoder: Any  # an audio encoder: forward_frames and frame_stride beyond nn.Module (checked in __init__)

    def __init__(
        self,
        encoder: nn.Module,
        frontend: list,
        sample_rate: int,
        hop_length: int,
        description: str = "",
        unit_sec: float = 1.0,
    ):
        super().__init__()
        if not hasattr(encoder, "forward_frames") or not hasattr(encoder, "frame_stride"):
            raise TypeError(
                f"{type(encoder).__name__} has no forward_frames/frame_stride: HEAR timestamp embeddings "
                "need an audio encoder (audiontt2020 / audiontt2022)"
            )
        self.encoder = encoder
        self.frontend = nn.ModuleList(frontend)
        self.sample_rate = int(sample_rate)
        self.hop_length = int(hop_length)
        self.scene_embedding_size = self.timestamp_embedding_size = feature_dim_of(encoder)
        self.description = description
        self.unit_sec = float(unit_sec)
        self.eval()

    def features(self, audio: Tensor) -> Tensor:
        x = audio.float()
        for op in self.frontend:
            x = op(x, None)
        return x

    def min_samples(self) -> int:
        return 16 * self.hop_length

    window_frames = WINDOW_FRAMES

    def _frames(self, audio: Tensor) -> Tensor:
        """forward_frames of the front end's output, window by window when the sound is long (MARGIN_FRAMES each
        side; a ClipNorm gets the whole clip's statistics from a first pass)."""
        stride, hop = int(self.encoder.frame_stride), self.hop_length
        n_mel = audio.shape[1] // hop + 1  # center=True
        if n_mel <= self.window_frames + 2 * MARGIN_FRAMES:
            return self.encoder.forward_frames(self.features(audio)).float()
        spans = window_spans(n_mel, stride, self.window_frames, MARGIN_FRAMES - MARGIN_FRAMES % stride)
        ops = list(self.frontend)
        at = next((i for i, op in enumerate(ops) if isinstance(op, ClipNorm)), None)
        if at is not None:
            ops[at] = ClipNorm(*self._clip_stats(audio, ops[:at], spans, n_mel, stride))
        out = []
        for k0, k1, g0, g1 in spans:
            frames = self.encoder.forward_frames(self._window(audio, g0, g1, ops)).float()
            out.append(frames[:, k0 - g0 // stride : k1 - g0 // stride])
        return torch.cat(out, dim=1)

    def _window(self, audio: Tensor, g0: int, g1: int, ops: list) -> Tensor:
        """``ops`` on the samples of log-mel frames [g0, g1) (cut at the sound's end)."""
        return Pipeline(ops)(audio[:, g0 * self.hop_length : min(audio.shape[1], g1 * self.hop_length)].float())

    def _clip_stats(self, audio: Tensor, upstream: list, spans: list, n_mel: int, stride: int) -> tuple:
        """(mean, unbiased std) of each clip's whole log-mel, accumulated window by window in float64."""
        total: Tensor | float = 0.0
        total_sq: Tensor | float = 0.0
        count = 0
        for j, (k0, k1, g0, g1) in enumerate(spans):
            end = n_mel if j == len(spans) - 1 else k1 * stride  # the last window keeps the unpooled tail
            y = self._window(audio, g0, g1, upstream)[..., k0 * stride - g0 : end - g0].double()
            total, total_sq = total + y.sum(dim=(1, 2, 3)), total_sq + (y * y).sum(dim=(1, 2, 3))
            count += y[0].numel()
        mean, sum_sq = torch.as_tensor(total) / count, torch.as_tensor(total_sq)
        std = ((sum_sq - count * mean * mean) / (count - 1)).clamp_min(0).sqrt()
        return mean.float().view(-1, 1, 1, 1), std.float().view(-1, 1, 1, 1)

    @torch.no_grad()
    def frames(self, audio: Tensor) -> Tensor:
        """The encoder's frames (n, T', D); frame k pools log-mel frames [k·s, (k+1)·s), s = encoder.frame_stride."""
        if audio.ndim != 2:
            raise ValueError(f"HEAR audio must be (n_sounds, n_samples), got shape {tuple(audio.shape)}")
        check_waveforms(audio, what="HEAR audio")
        if audio.shape[0] == 0:
            return audio.new_zeros((0, 0, self.timestamp_embedding_size), dtype=torch.float32)
        if audio.shape[1] < self.min_samples():
            audio = nn.functional.pad(audio, (0, self.min_samples() - audio.shape[1]))
        outs = [self._frames(audio[start : start + BATCH]) for start in range(0, audio.shape[0], BATCH)]
        return torch.cat(outs)


def hear_model(encoder, description: str = "", where: str = "model") -> HearModel:
    """The HEAR model of an :class:`~ssl_toolkit.encoder.Encoder` (also what ``Encoder.embed_frames`` runs): its
    backbone and front end, with per-clip standardization when pre_norm has no statistics."""
    frontend = list(encoder.frontend.ops)
    upstream, prenorm, downstream = split_frontend(frontend)
    if prenorm is not None and not bool(getattr(prenorm, "ready", False)):
        warnings.warn(
            f"{where}: no pre_norm statistics stored with the weights; "
            "each clip's log-mel is standardized with its own mean and std"
        )
        frontend = [*upstream, ClipNorm(), *downstream]
    hop = 160
    for op in upstream:
        fe = getattr(op, "mel", None)
        if fe is not None and hasattr(fe, "hop_length"):
            hop = int(fe.hop_length)
    return HearModel(
        encoder.backbone, frontend, encoder.sample_rate or 16000, hop, description, unit_sec=encoder.unit_sec or 1.0
    )


def _device_of(model: HearModel) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _shifts(stride: int, frame_ms: float, target_ms: float) -> int:
    """Passes (audio shifted by stride/n log-mel frames each) needed for ≤ target_ms spacing; n divides stride."""
    for n in range(1, stride + 1):
        if stride % n == 0 and stride * frame_ms / n <= target_ms:
            return n
    return stride


def get_timestamp_embeddings(audio: Tensor, model: HearModel) -> Tuple[Tensor, Tensor]:
    """((n_sounds, n_timestamps, D) float32 embeddings, (n_sounds, n_timestamps) timestamps in ms).

    When the encoder's frame period exceeds 50 ms (AudioNTT2020: 80 ms), the audio is also embedded
    shifted by a whole number of log-mel hops and the frames are interleaved, giving evenly spaced
    timestamps ≤ 50 ms apart (HEAR's advice for onset-tolerance tasks)."""
    if not isinstance(model, HearModel):
        raise TypeError(f"model must come from ssl_toolkit.hear.load_model, got {type(model).__name__}")
    audio = torch.as_tensor(audio).to(_device_of(model))
    frames, stride = model.frames(audio), int(model.encoder.frame_stride)
    frame_ms = 1000.0 * model.hop_length / model.sample_rate
    n_shift = _shifts(stride, frame_ms, TIMESTAMP_MS)
    if n_shift > 1 and frames.shape[1] > 0:
        step = stride // n_shift  # log-mel frames between interleaved timestamps
        passes = [frames]
        for j in range(1, n_shift):
            offset = j * step * model.hop_length
            if audio.shape[1] - offset < model.min_samples():
                break
            passes.append(model.frames(audio[:, offset:]))
        if len(passes) == n_shift:
            t = min(p.shape[1] for p in passes)
            frames = torch.stack([p[:, :t] for p in passes], dim=2).flatten(1, 2)
        else:
            n_shift = 1
    n, t = frames.shape[0], frames.shape[1]
    k = torch.arange(t, dtype=torch.float64)
    period = stride / n_shift  # in log-mel frames
    centers = (k * period + (stride - 1) / 2.0) * frame_ms
    ts = centers.to(torch.float32).to(frames.device).unsqueeze(0).expand(n, t).contiguous()
    return frames.contiguous(), ts
