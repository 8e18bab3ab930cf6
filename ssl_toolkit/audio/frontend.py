"""Log-mel front ends: batched waveforms (B, T) → log-mel spectrograms (B, 1, n_mels, frames).

Two interchangeable implementations, as in the two BYOL-A versions:

- ``nnaudio_mel`` — nnAudio ``MelSpectrogram`` (Slaney mel scale and area normalization,
  ``center=True`` with reflect padding, power 2): the BYOL-A v2 setting.
- ``torchaudio_mel`` — ``torchaudio.transforms.MelSpectrogram`` (HTK mel scale, no filter
  normalization, ``center=True``, power 2): the BYOL-A v1 setting.

Both return ``log(mel + eps)`` with ``eps`` the float32 machine epsilon. The defaults (16 kHz,
n_fft = win = 1024, hop 160, 64 mels, 60–7800 Hz) turn a 0.95 s segment into 64 × 96.
The filter banks are non-persistent buffers: they follow ``.to(device)`` but stay out of
checkpoints (they are a function of the settings).
"""

from __future__ import annotations

import torch
from torch import nn

from ..params import NonNegativeFloat, PositiveFloat, PositiveInt
from ..registry import FRONTENDS

EPS = torch.finfo(torch.float32).eps


def _make_buffers_non_persistent(module: nn.Module) -> None:
    for sub in module.modules():
        for name, buf in list(sub.named_buffers(recurse=False)):
            delattr(sub, name)
            sub.register_buffer(name, buf, persistent=False)


class LogMelFrontEnd(nn.Module):
    """log(mel(x) + eps) around a mel-spectrogram module, with a fixed output layout."""

    def __init__(self, mel: nn.Module, sample_rate: int, n_mels: int, hop_length: int, name: str):
        super().__init__()
        self.mel = mel
        self.sample_rate, self.n_mels, self.hop_length, self.name = sample_rate, n_mels, hop_length, name
        _make_buffers_non_persistent(self)

    def num_frames(self, num_samples: int) -> int:
        """Frames produced for a wave of ``num_samples`` samples (center=True)."""
        return num_samples // self.hop_length + 1

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.ndim == 1:
            wave = wave[None]
        if wave.ndim == 3:  # (B, 1, T)
            if wave.shape[1] != 1:
                raise ValueError(f"log-mel front end expects mono (B, T) or (B, 1, T) waves, got {tuple(wave.shape)}")
            wave = wave[:, 0]
        if wave.ndim != 2:
            raise ValueError(f"log-mel front end expects (B, T) waves, got shape {tuple(wave.shape)}")
        mel = self.mel(wave.float())  # (B, n_mels, frames)
        return (mel + EPS).log().unsqueeze(1)

    def extra_repr(self) -> str:
        return f"{self.name}, sample_rate={self.sample_rate}, n_mels={self.n_mels}, hop={self.hop_length}"


@FRONTENDS.register("nnaudio_mel")
def nnaudio_mel(
    sample_rate: PositiveInt = 16000,
    n_fft: PositiveInt = 1024,
    win_length: PositiveInt = 1024,
    hop_length: PositiveInt = 160,
    n_mels: PositiveInt = 64,
    f_min: NonNegativeFloat = 60.0,
    f_max: PositiveFloat = 7800.0,
) -> LogMelFrontEnd:
    """Log-mel with nnAudio MelSpectrogram (Slaney, center=True): the BYOL-A v2 front end."""
    from nnAudio.features import MelSpectrogram

    mel = MelSpectrogram(
        sr=sample_rate,
        n_fft=n_fft,
        win_length=win_length,
        n_mels=n_mels,
        hop_length=hop_length,
        window="hann",
        center=True,
        pad_mode="reflect",
        power=2.0,
        htk=False,
        fmin=f_min,
        fmax=f_max,
        norm=1,
        trainable_mel=False,
        trainable_STFT=False,
        verbose=False,
    )
    return LogMelFrontEnd(mel, sample_rate, n_mels, hop_length, "nnaudio_mel")


@FRONTENDS.register("torchaudio_mel")
def torchaudio_mel(
    sample_rate: PositiveInt = 16000,
    n_fft: PositiveInt = 1024,
    win_length: PositiveInt = 1024,
    hop_length: PositiveInt = 160,
    n_mels: PositiveInt = 64,
    f_min: NonNegativeFloat = 60.0,
    f_max: PositiveFloat = 7800.0,
) -> LogMelFrontEnd:
    """Log-mel with torchaudio MelSpectrogram (HTK, center=True): the BYOL-A v1 front end."""
    import torchaudio

    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate,
        n_fft=n_fft,
        win_length=win_length,
        hop_length=hop_length,
        f_min=f_min,
        f_max=f_max,
        n_mels=n_mels,
        power=2.0,
        center=True,
    )
    return LogMelFrontEnd(mel, sample_rate, n_mels, hop_length, "torchaudio_mel")
