"""The HEAR 2021 API (Turian et al., "HEAR: Holistic Evaluation of Audio Representations") for
ssl_toolkit audio encoders, so that hear-eval-kit and hear-validator can use them::

    import ssl_toolkit.hear as hear
    model = hear.load_model("runs/byola/checkpoints/last.pt")   # or encoder.pt / official BYOL-A weights
    scene = hear.get_scene_embeddings(audio, model)               # (n_sounds, D) float32
    frames, ts = hear.get_timestamp_embeddings(audio, model)      # (n, T, D) float32, (n, T) ms

``audio`` is a float tensor (n_sounds, n_samples) in [-1, 1] at ``model.sample_rate`` on the model's
device; integer samples, NaN/inf, a peak above 2 (integer PCM passed as float) or another shape are refused
with an error naming the sound, and zero sounds give zero embeddings of the right shape. The model is the
checkpoint's front end (log-mel → pre_norm) and encoder:

- timestamp embeddings are the encoder's frames (``forward_frames``), one every ``hop × stride``
  samples (AudioNTT2020: 8 × 10 ms = 80 ms; AudioNTT2022: 40 ms); when that exceeds 50 ms the audio
  is embedded again shifted by half the period and the frames interleaved (AudioNTT2020: 40 ms).
  A timestamp is the centre of the log-mel frames its embedding pools, so every timestamp lies
  inside the audio and they are evenly spaced;
- scene embeddings are the encoder's clip embedding (max + mean of the frames over time).

``load_model(path)`` accepts what ``ssl-toolkit eval --checkpoint`` accepts: a run directory, a
training checkpoint (its recipe names the encoder and front end, its views state holds the pre_norm
statistics), an ``encoder.pt`` (with the run's ``recipe.yaml`` beside it) or official BYOL-A weights
(architecture inferred from the shapes, official front end). Without stored statistics (official
weights, a bare encoder file, ``""``) each clip's log-mel is standardized with its own mean and std,
and a warning says so. ``load_model("")`` gives a randomly initialized BYOL-A v1 encoder (for API checks
only).
"""
from __future__ import annotations

import logging
import warnings
from typing import Tuple

import torch
from torch import Tensor, nn

from .audio.embedding import check_waveforms

log = logging.getLogger("ssl_toolkit.hear")

__all__ = ["load_model", "get_scene_embeddings", "get_timestamp_embeddings", "HearModel"]

BATCH = 8  # clips per forward pass (bounds memory for long audio)
TIMESTAMP_MS = 50.0  # largest spacing of timestamp embeddings


class ClipNorm(nn.Module):
    """Standardize each clip's log-mel with its own mean and std (no dataset statistics known)."""

    def forward(self, x: Tensor, generator=None) -> Tensor:
        dims = tuple(range(1, x.ndim))
        return (x - x.mean(dim=dims, keepdim=True)) / x.std(dim=dims, keepdim=True).clamp_min(1e-5)


class HearModel(nn.Module):
    """Front end + encoder with the attributes the HEAR API asks for."""

    def __init__(self, encoder: nn.Module, frontend: list, sample_rate: int, hop_length: int, description: str = ""):
        super().__init__()
        if not hasattr(encoder, "forward_frames") or not hasattr(encoder, "frame_stride"):
            raise TypeError(f"{type(encoder).__name__} has no forward_frames/frame_stride: HEAR timestamp embeddings "
                            "need an audio encoder (audiontt2020 / audiontt2022)")
        self.encoder = encoder
        self.frontend = nn.ModuleList(frontend)
        self.sample_rate = int(sample_rate)
        self.hop_length = int(hop_length)
        self.scene_embedding_size = int(encoder.feature_dim)
        self.timestamp_embedding_size = int(encoder.feature_dim)
        self.description = description
        self.eval()

    def features(self, audio: Tensor) -> Tensor:
        x = audio.float()
        for op in self.frontend:
            x = op(x, None)
        return x

    def min_samples(self) -> int:
        return 16 * self.hop_length

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
        outs = [self.encoder.forward_frames(self.features(audio[start:start + BATCH])).float()
                for start in range(0, audio.shape[0], BATCH)]
        return torch.cat(outs)


def _pieces_from(path: str):
    from .eval.models import ModelSource, make_models, resolve_checkpoint
    from .eval.schema import ModelSpec
    from .recipe import Component, import_components

    import_components()
    if not path:
        source = ModelSource(spec="random", kind="random")
        spec = ModelSpec(encoder=Component(name="audiontt2020", n_mels=64, feature_d=2048))
        warnings.warn("ssl_toolkit.hear.load_model(''): a randomly initialized BYOL-A v1 encoder (API checks only)")
    else:
        source = resolve_checkpoint(path)
        spec = ModelSpec()
    model, _ = make_models(source, spec, seed=0, want_random=False, prenorm="checkpoint")
    return model, source


def load_model(model_file_path: str = "") -> HearModel:
    """A HEAR model from a checkpoint, run directory, encoder.pt or official BYOL-A weight file."""
    model, source = _pieces_from(model_file_path)
    return hear_model(model, f"{source.kind}: {model.encoder_spec}", model_file_path or "random model")


def hear_model(model, description: str = "", where: str = "model") -> HearModel:
    """The HEAR model of an :class:`~ssl_toolkit.eval.models.EvalModel` (also used by ``ssl-toolkit embed
    --frames``): its front end, with per-clip standardization when pre_norm has no statistics."""
    from .audio.embedding import frontend_sample_rate, split_frontend

    frontend = list(model.frontend)
    upstream, prenorm, downstream = split_frontend(frontend)
    if prenorm is not None and not bool(getattr(prenorm, "ready", False)):
        warnings.warn(f"{where}: no pre_norm statistics stored with the weights; "
                      "each clip's log-mel is standardized with its own mean and std")
        frontend = [*upstream, ClipNorm(), *downstream]
    hop = 160
    for op in upstream:
        fe = getattr(op, "mel", None)
        if fe is not None and hasattr(fe, "hop_length"):
            hop = int(fe.hop_length)
    return HearModel(model.encoder, frontend, frontend_sample_rate(frontend), hop, description)


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


def get_scene_embeddings(audio: Tensor, model: HearModel) -> Tensor:
    """(n_sounds, D) float32: the encoder's clip embedding (max + mean of its frames over time)."""
    if not isinstance(model, HearModel):
        raise TypeError(f"model must come from ssl_toolkit.hear.load_model, got {type(model).__name__}")
    audio = torch.as_tensor(audio).to(_device_of(model))
    frames = model.frames(audio)
    if frames.shape[0] == 0:
        return frames.new_zeros((0, model.scene_embedding_size))
    return (frames.max(dim=1).values + frames.mean(dim=1)).float().contiguous()
