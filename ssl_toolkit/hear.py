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
- scene embeddings are those of ``ssl-toolkit embed``, ``eval`` and ``Encoder.embed``: the encoder's clip
  embedding (max + mean of the frames over time) of each ``unit_sec`` piece (the training recipe's segment
  length, else 1 s), averaged over a sound's pieces; a sound shorter than ``unit_sec`` is zero-padded to it
  (EVAR's rule).

``load_model(path)`` accepts what :func:`ssl_toolkit.load_encoder` accepts: a run directory, a training
checkpoint (its recipe names the encoder and front end, its views state holds the pre_norm statistics), an
``encoder.pt`` / ``.safetensors``, an exported folder or official BYOL-A weights (architecture inferred from
the shapes, official front end). Without stored statistics (official weights, a bare encoder file, ``""``)
each piece's log-mel is standardized with its own mean and std, and a warning says so. ``load_model("")`` gives a
randomly initialized BYOL-A v1 encoder (for API checks only).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from .audio.embedding import check_waveforms
from .audio.frames import BATCH, ClipNorm, HearModel, _device_of, get_timestamp_embeddings, hear_model  # noqa: F401

__all__ = ["load_model", "get_scene_embeddings", "get_timestamp_embeddings", "HearModel"]


def load_model(model_file_path: str = "") -> HearModel:
    """A HEAR model from what :func:`ssl_toolkit.load_encoder` reads: a run directory, a checkpoint, an encoder file,
    an exported folder or official BYOL-A weights; ``""``: a randomly initialized BYOL-A v1 encoder."""
    from .api import load_encoder

    if not model_file_path:
        warnings.warn("ssl_toolkit.hear.load_model(''): a randomly initialized BYOL-A v1 encoder (API checks only)")
        enc = load_encoder("random", encoder={"name": "audiontt2020", "n_mels": 64, "feature_d": 2048})
    else:
        enc = load_encoder(model_file_path)
    return hear_model(enc, f"{enc.source.get('kind')}: {enc.encoder_spec}", model_file_path or "random model")


def get_scene_embeddings(audio: Tensor, model: HearModel) -> Tensor:
    """(n_sounds, D) float32: the scene embedding ``ssl-toolkit embed``, ``eval`` and ``Encoder.embed`` give
    (:func:`ssl_toolkit.audio.embedding.embed_clips`): the encoder's clip embedding (max + mean of its frames over
    time) of each ``unit_sec`` piece, averaged over the pieces; a sound shorter than ``unit_sec`` is zero-padded."""
    from .audio.embedding import embed_clips

    if not isinstance(model, HearModel):
        raise TypeError(f"model must come from ssl_toolkit.hear.load_model, got {type(model).__name__}")
    audio = torch.as_tensor(audio)
    if audio.ndim != 2:
        raise ValueError(f"HEAR audio must be (n_sounds, n_samples), got shape {tuple(audio.shape)}")
    check_waveforms(audio, what="HEAR audio")
    device = _device_of(model)
    if audio.shape[0] == 0:
        return torch.zeros((0, model.scene_embedding_size), device=device)
    waves = list(audio.detach().float().cpu().numpy())
    emb = embed_clips(
        waves, model.encoder, list(model.frontend), model.sample_rate, model.unit_sec, device=device, batch_size=BATCH
    )
    return torch.from_numpy(emb).to(device)
