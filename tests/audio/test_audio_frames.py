"""Timestamp embeddings of long audio are computed window by window (audio/frames.py): the frames equal the whole-
sound ones (real files, both encoders, with stored and per-clip statistics), and peak memory does not grow with the
recording's length (issue 37)."""

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import ssl_toolkit as sslt
from ssl_toolkit.audio.dataset import load_audio
from ssl_toolkit.audio.frames import hear_model, window_spans

ROOT = Path(__file__).resolve().parents[2]
EMODB = ROOT / "data" / "demo" / "emodb" / "wav"


def test_window_spans_cover_every_output_frame_once():
    spans = window_spans(1003, 8, 64, 16)
    assert spans[0] == (0, 8, 0, 80) and spans[-1][1] == 1003 // 8
    assert [s[0] for s in spans[1:]] == [s[1] for s in spans[:-1]] and all(s[2] % 8 == 0 for s in spans)


@pytest.mark.parametrize(
    "spec, stats",
    [
        ({"name": "audiontt2020", "feature_d": 64}, True),
        ({"name": "audiontt2020", "feature_d": 64}, False),  # per-clip normalization: the whole clip's statistics
        ({"name": "audiontt2022", "feature_d": 1040, "mlp_hidden_d": 32}, True),
    ],
)
def test_windowed_frames_equal_the_whole_sound_s(spec, stats):
    files = sorted(EMODB.glob("*.flac"))[:3]
    waves = torch.stack([torch.from_numpy(load_audio(f, 16000)) for f in files])  # 2.0 s each: 201 log-mel frames
    enc = sslt.load_encoder("random", encoder=spec)
    if stats:
        enc.fit_prenorm(list(waves.numpy()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per-clip normalization is announced
        model = hear_model(enc)
    whole = model.frames(waves)
    model.window_frames = 32  # 4 windows of 2.0 s clips with 64-frame margins
    windowed = model.frames(waves)
    assert windowed.shape == whole.shape
    torch.testing.assert_close(windowed, whole, rtol=1e-5, atol=1e-6)


PEAK = """
import resource, sys, torch, warnings
warnings.simplefilter("ignore")
import ssl_toolkit as sslt
from ssl_toolkit.audio.frames import hear_model
enc = sslt.load_encoder("random", encoder={"name": "audiontt2020", "feature_d": 64})
x = (torch.rand(1, int(16000 * 60 * float(sys.argv[1]))) - 0.5) * 0.5
enc.fit_prenorm([x[0, :160000].numpy()])
m = hear_model(enc)
calls = []
forward = m.encoder.forward_frames
m.encoder.forward_frames = lambda y: calls.append(y.shape[-1]) or forward(y)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
frames = m.frames(x)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024, len(calls), max(calls), frames.shape[1])
"""


def _peak(minutes: float) -> tuple[int, int, int, int]:
    """(extra peak RSS in MB, encoder passes, most log-mel frames in one pass, output frames)."""
    done = subprocess.run([sys.executable, "-c", PEAK, str(minutes)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return tuple(int(v) for v in done.stdout.split())


def test_peak_memory_does_not_grow_with_length():
    """1 vs 4 minutes of 16 kHz audio: the extra peak memory of the frames stays flat (un-windowed it grew about
    190 MB a minute: 2.5 GB for 10 minutes with the demo encoder), because no pass sees more than a window."""
    short, long = _peak(1), _peak(4)
    assert long[3] == 4 * 60 * 100 // 8 and long[1] > 4 * short[1] - 4  # all frames, ~4× the windows
    assert max(long[2], short[2]) <= 1536 + 2 * 64 + 1  # a window, its margins and the centred last frame
    assert long[0] - short[0] < 60, (short, long)
