"""audio_folder: folders and CSVs, decoding, resampling, random segments, bad files."""

import numpy as np
import pytest
import torch
import torchaudio.functional as AF
from torch.utils.data import DataLoader

from ssl_toolkit.audio.dataset import AudioFolder, load_audio
from ssl_toolkit.data import BadFileError, BadItem, collate_skipping_bad
from ssl_toolkit.registry import DATASETS

SR = 16000


def sine(sec, sr, freq=440.0, amp=0.5):
    t = np.arange(int(sec * sr)) / sr
    return amp * np.sin(2 * np.pi * freq * t)


def test_folder_labels_from_subfolders_and_formats(tmp_path, write_wav):
    write_wav(tmp_path / "dog" / "a.wav", sine(0.5, 8000), 8000)
    write_wav(tmp_path / "cat" / "b.flac", sine(1.2, SR), SR)
    write_wav(tmp_path / "cat" / "c.ogg", sine(0.3, 22050), 22050, subtype="VORBIS")
    (tmp_path / "cat" / "notes.txt").write_text("not audio")
    write_wav(tmp_path / "cat" / ".ipynb_checkpoints" / "b-checkpoint.wav", sine(0.5, SR), SR)  # hidden: left out
    write_wav(tmp_path / ".trash" / "x.wav", sine(0.5, SR), SR)
    write_wav(tmp_path / "dog" / ".d.wav", sine(0.5, SR), SR)
    ds = DATASETS.build("audio_folder", root=str(tmp_path), unit_sec=0.5)
    assert len(ds) == 3 and ds.classes == ["cat", "dog"]
    items = [ds[i] for i in range(3)]
    assert [y for _, y in items] == [0, 0, 1]  # cat/b.flac, cat/c.ogg, dog/a.wav
    for x, _ in items:
        assert x.dtype == torch.float32 and x.shape == (8000,)


def test_flat_folder_has_unknown_labels(tmp_path, write_wav):
    for k in range(3):
        write_wav(tmp_path / f"{k}.wav", sine(0.2, SR), SR)
    ds = AudioFolder(str(tmp_path))
    assert [ds[i][1] for i in range(3)] == [-1, -1, -1]
    assert ds.segment_samples == 15200  # 0.95 s at 16 kHz


def test_csv_split_fold_and_string_labels(tmp_path, write_wav):
    rows = ["file_name,label,split,fold"]
    for k, (lab, split, fold) in enumerate(
        [("yes", "train", 1), ("no", "train", 2), ("maybe", "test", 1), ("no", "test", 2)]
    ):
        write_wav(tmp_path / "audio" / f"{k}.wav", sine(0.2, SR), SR)
        rows.append(f"{k}.wav,{lab},{split},{fold}")
    (tmp_path / "meta.csv").write_text("\n".join(rows) + "\n")
    common = dict(root=str(tmp_path), metadata="meta.csv", audio_dir="audio")
    ds = AudioFolder(**common)
    assert ds.classes == ["maybe", "no", "yes"] and [ds[i][1] for i in range(4)] == [2, 1, 0, 1]
    assert len(AudioFolder(**common, split="train")) == 2
    assert len(AudioFolder(**common, split="train,test", fold="2")) == 2
    with pytest.raises(ValueError, match="no rows with split in \\['valid'\\]"):
        AudioFolder(**common, split="valid")
    # the CSV itself as root; file names relative to its folder
    (tmp_path / "audio" / "m.csv").write_text("file_name,label\n0.wav,3\n1.wav,7\n")
    ds = AudioFolder(str(tmp_path / "audio" / "m.csv"))
    assert ds.classes == ["3", "7"] and [ds[i][1] for i in range(2)] == [0, 1]  # ids, as in evaluation


def test_missing_and_empty_sources_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope")):
        AudioFolder(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty.*" + str(tmp_path / "empty")):
        AudioFolder(str(tmp_path / "empty"))
    (tmp_path / "m.csv").write_text("path,label\nx.wav,1\n")
    with pytest.raises(ValueError, match="file_name"):
        AudioFolder(str(tmp_path), metadata="m.csv")


def test_mono_mix_and_resampling(tmp_path, write_wav):
    left, right = sine(0.5, 8000, 300.0), sine(0.5, 8000, 1000.0, amp=0.25)
    path = write_wav(tmp_path / "st.wav", np.stack([left, right], axis=1), 8000, subtype="FLOAT")
    wave = load_audio(path, SR)
    mono8k = ((left + right) / 2).astype(np.float32)
    expected = AF.resample(torch.from_numpy(mono8k), 8000, SR).numpy()
    assert wave.shape == (8000,)  # 0.5 s at 16 kHz
    np.testing.assert_allclose(wave, expected, atol=1e-6)
    # the dataset delivers the resampled wave (segment longer than the clip: zero-padded at the end)
    ds = AudioFolder(str(tmp_path), unit_sec=0.75)
    x, _ = ds[0]
    np.testing.assert_allclose(x[:8000].numpy(), expected, atol=1e-6)
    assert torch.count_nonzero(x[8000:]) == 0 and x.shape == (12000,)


def test_random_segment_start_is_random_and_reproducible(tmp_path, write_wav):
    n = 3 * SR
    ramp = np.arange(n, dtype=np.float64) / n  # the value tells the position
    write_wav(tmp_path / "audio" / "ramp.wav", ramp, SR, subtype="DOUBLE")
    (tmp_path / "m.csv").write_text("file_name\n" + "ramp.wav\n" * 40)
    ds = AudioFolder(str(tmp_path), metadata="m.csv", audio_dir="audio", unit_sec=1.0, seed=3)
    length = ds.segment_samples

    def starts():
        return [int(round(float(ds[i][0][0]) * n)) for i in range(len(ds))]

    first = starts()
    assert len(set(first)) > 30, "segment starts are not random"
    assert min(first) >= 0 and max(first) <= n - length
    assert max(first) - min(first) > n // 2  # spread over the valid range
    expected = [int(np.random.default_rng((3, 0, i)).integers(0, n - length + 1)) for i in range(len(ds))]
    assert first == expected
    x, _ = ds[5]
    np.testing.assert_allclose(x.numpy(), ramp[first[5] : first[5] + length].astype(np.float32), atol=1e-7)
    assert starts() == first  # same (seed, epoch, index): same segment
    ds.set_epoch(1)
    second = starts()
    assert second != first and sum(a == b for a, b in zip(first, second)) < 5
    ds.set_epoch(0)
    assert starts() == first


def _bad_files(tmp_path, write_wav):
    write_wav(tmp_path / "good.wav", sine(0.3, SR), SR)
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x01garbage" * 10)
    nan = sine(0.3, SR)
    nan[100] = np.nan
    write_wav(tmp_path / "nan.wav", nan, SR, subtype="FLOAT")
    write_wav(tmp_path / "zero.wav", np.zeros(0), SR)
    return {"empty.wav": "empty", "corrupt.wav": "unreadable", "nan.wav": "NaN", "zero.wav": "zero-length"}


@pytest.mark.parametrize("cache", ["auto", "none"])
def test_bad_files_are_skipped_with_their_path(tmp_path, write_wav, cache):
    reasons = _bad_files(tmp_path, write_wav)
    ds = AudioFolder(str(tmp_path), cache=cache)
    assert len(ds) == 5
    seen = {}
    for i in range(len(ds)):
        item = ds[i]
        if isinstance(item, BadItem):
            seen[item.path] = item.reason
        else:
            assert item[0].shape == (15200,)
    assert set(seen) == {str(tmp_path / name) for name in reasons}
    for name, word in reasons.items():
        assert word in seen[str(tmp_path / name)], seen[str(tmp_path / name)]
    # a DataLoader run goes through: good items batched, bad ones reported
    batches = list(DataLoader(ds, batch_size=5, collate_fn=collate_skipping_bad))
    x, y, bad = batches[0]
    assert x.shape == (1, 15200) and len(bad) == 4


@pytest.mark.parametrize("cache", ["auto", "none"])
def test_bad_files_fail_when_asked(tmp_path, write_wav, cache):
    write_wav(tmp_path / "a_good.wav", sine(0.3, SR), SR)
    (tmp_path / "b_corrupt.wav").write_bytes(b"not audio at all")
    with pytest.raises(BadFileError, match="b_corrupt.wav"):
        ds = AudioFolder(str(tmp_path), on_bad_file="fail", cache=cache)  # preload fails early
        for i in range(len(ds)):
            ds[i]


def test_real_fsdd_split(fsdd):
    ds = AudioFolder(str(fsdd), metadata="metadata.csv", audio_dir="recordings", split="test")
    assert len(ds) == 1000 and ds.cached
    assert sorted({ds.labels[i] for i in range(len(ds))}) == list(range(10))
    x, y = ds[0]
    assert x.shape == (15200,) and torch.isfinite(x).all() and x.abs().max() > 0.01


def test_description_keys_contents_not_only_names(tmp_path, write_wav):
    """The key of cached pre_norm statistics changes when a clip is rewritten under the same name."""
    import os

    for k in range(3):
        write_wav(tmp_path / f"{k}.wav", sine(0.2, SR), SR)
    before = AudioFolder(str(tmp_path)).describe()
    assert AudioFolder(str(tmp_path)).describe() == before  # stable while nothing changes
    write_wav(tmp_path / "1.wav", sine(0.2, SR, amp=0.1), SR)
    st = (tmp_path / "1.wav").stat()
    os.utime(tmp_path / "1.wav", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))  # even within one mtime tick
    after = AudioFolder(str(tmp_path)).describe()
    assert after["files_sha1"] == before["files_sha1"] and after != before
