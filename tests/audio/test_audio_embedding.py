"""ssl_toolkit.audio.embedding: scene embeddings of clips and what the entry point accepts."""

import numpy as np
import pytest
import torch

from ssl_toolkit.audio.embedding import check_waveforms, embed_batches, embed_clips, piece_spans


def mean_encoder(x):
    return torch.stack([x.mean(dim=-1), x.abs().amax(dim=-1)], dim=1)


def test_pieces_are_embedded_and_averaged_per_clip():
    rng = np.random.default_rng(0)
    waves = [rng.uniform(-1, 1, n).astype(np.float32) for n in (100, 250, 40)]
    emb = embed_clips(waves, mean_encoder, [], 100, unit_sec=1.0, batch_size=2)
    assert emb.shape == (3, 2) and emb.dtype == np.float32
    for wave, row in zip(waves, emb):
        spans = piece_spans(len(wave), 100, "chunks")
        pieces = [np.pad(wave[s : s + n], (0, 100 - n)) for s, n in spans]
        expected = np.mean([[p.mean(), np.abs(p).max()] for p in pieces], axis=0)
        np.testing.assert_allclose(row, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "waves, error, words",
    [
        ([np.zeros(10, np.float32), np.array([0.1, np.nan], np.float32)], ValueError, "clip 1 contains NaN or inf"),
        ([np.array([0.0, np.inf], np.float64)], ValueError, "clip 0 contains NaN or inf"),
        ([np.array([0, 20000], np.int16)], TypeError, "clip 0 has int16 samples; expected floating-point audio"),
        ([np.array([0.0, 300.0], np.float32)], ValueError, "clip 0 peaks at 300; expected audio in [-1, 1]"),
        ([np.zeros((2, 10), np.float32)], ValueError, "clip 0 has shape (2, 10); expected mono samples"),
    ],
)
def test_bad_clips_are_refused_naming_the_clip(waves, error, words):
    with pytest.raises(error, match=__import__("re").escape(words)):
        embed_clips(waves, mean_encoder, [], 100, unit_sec=1.0)


def test_zero_clips_and_names_in_errors():
    assert embed_clips([], mean_encoder, [], 100, unit_sec=1.0).shape == (0, 0)
    with pytest.raises(ValueError, match="my.wav contains NaN"):
        check_waveforms([np.array([np.nan], np.float32)], names=["my.wav"])
    check_waveforms([np.zeros(0, np.float32), torch.zeros(5)])  # empty and torch clips are fine


def test_embed_batches_averages_pieces_per_clip_and_names_an_empty_input():
    clips = [np.array([0, 0, 1]), np.array([1])]  # the owner clip of each piece
    xs = [torch.tensor([[1.0, 2.0], [3.0, 4.0], [10.0, 0.0]]), torch.tensor([[20.0, 2.0]])]
    out = embed_batches(zip(clips, xs), lambda x: x, n_clips=2)
    np.testing.assert_allclose(out, [[2.0, 3.0], [15.0, 1.0]])
    with pytest.raises(ValueError, match="no clips to embed"):
        embed_batches([], lambda x: x, n_clips=0)
