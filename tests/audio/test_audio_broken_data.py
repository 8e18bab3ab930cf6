"""A folder with broken audio trains to the end; each bad file is listed once with its reason."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ssl_toolkit.audio import dataset as audio_dataset
from ssl_toolkit.recipe import load_recipe
from ssl_toolkit.training.metrics import read_metrics
from ssl_toolkit.training.trainer import Trainer, TrainingError

ROOT = Path(__file__).resolve().parents[2]
RECIPE = ROOT / "recipes" / "audio" / "byola_fsdd.yaml"
DEMO = ROOT / "data" / "demo" / "fsdd_mini" / "recordings"


def broken_folder(tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    for src in sorted(DEMO.glob("*.wav"))[:12]:
        shutil.copy(src, folder / src.name)
    (folder / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(200)))
    (folder / "empty.wav").write_bytes(b"")
    (folder / "wrong_type.wav").write_text("this is a text file, not audio\n")
    sf.write(folder / "nan.wav", np.full(8000, np.nan, dtype=np.float32), 8000, subtype="FLOAT")
    sf.write(folder / "silent.wav", np.zeros(8000, dtype=np.float32), 8000)  # valid audio: kept
    shutil.copy(sorted(DEMO.glob("*.wav"))[0], folder / "no_permission.wav")
    return folder


BAD = {"corrupt.wav", "empty.wav", "wrong_type.wav", "nan.wav", "no_permission.wav"}


@pytest.fixture
def permission_denied(monkeypatch):
    """Root reads any file, so the permission failure is injected where the file is opened."""
    real = audio_dataset._decode

    def decode(source, suffix):
        if Path(source).name == "no_permission.wav":
            raise PermissionError(13, "Permission denied", str(source))
        return real(source, suffix)

    monkeypatch.setattr(audio_dataset, "_decode", decode)


def overrides(folder, on_bad_file):
    return [
        f"data.dataset.root={folder}",
        "data.dataset.metadata=null",
        "data.dataset.audio_dir=null",
        "data.dataset.split=null",
        f"data.dataset.on_bad_file={on_bad_file}",
        "data.batch_size=4",
        "data.drop_last=false",
        "trainer.max_steps=6",
        "trainer.log_every=2",
        "trainer.progress=false",
        "model.encoder.feature_d=64",
        "model.projector.hidden_dim=64",
        "model.predictor.hidden_dim=64",
    ]


def test_broken_files_are_skipped_listed_once_and_counted(tmp_path, permission_denied):
    folder = broken_folder(tmp_path)
    run = Trainer(load_recipe(RECIPE, overrides(folder, "skip")), out_dir=tmp_path / "run", quiet=True).fit()
    listed = [line.split("\t") for line in (run / "skipped_files.txt").read_text().splitlines()]
    assert sorted(Path(p).name for p, _ in listed) == sorted(BAD)  # each once, silent.wav kept
    reasons = {Path(p).name: r for p, r in listed}
    assert "empty" in reasons["empty.wav"] and "NaN" in reasons["nan.wav"]
    assert "Permission denied" in reasons["no_permission.wav"]
    rows = read_metrics(run)
    assert [int(r["step"]) for r in rows] == [2, 4, 6]  # more than one epoch: every file was read
    counts = [int(r["skipped_files"]) for r in rows]
    assert counts == sorted(counts) and counts[-1] == len(BAD)
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    assert (run / "encoder.pt").exists()


def test_on_bad_file_fail_names_the_file(tmp_path, permission_denied):
    folder = broken_folder(tmp_path)
    with pytest.raises(TrainingError) as e:
        Trainer(load_recipe(RECIPE, overrides(folder, "fail")), out_dir=tmp_path / "run", quiet=True).fit()
    assert str(folder) in str(e.value) and any(name in str(e.value) for name in BAD)


def test_a_csv_of_missing_files_and_a_folder_of_only_broken_files_are_clear_errors(tmp_path):
    folder = tmp_path / "audio"
    folder.mkdir()
    for name in ("a.wav", "b.wav", "c.wav", "d.wav"):
        (folder / name).write_text("not audio\n")
    (folder / "meta.csv").write_text("file_name,label\n" + "".join(f"gone_{n},x\n" for n in "abcd"))
    base = overrides(folder, "skip")
    with pytest.raises(
        TrainingError,
        match=r"none of the 4 audio files listed in .*meta.csv exists \(looked in "
        r".*audio, e.g. .*gone_a\); set audio_dir",
    ):
        Trainer(
            load_recipe(RECIPE, [*base, "data.dataset.metadata=meta.csv"]), out_dir=tmp_path / "r1", quiet=True
        ).fit()
    with pytest.raises(
        TrainingError,
        match="views: preparing the ops with the training data failed: pre_norm "
        "statistics: the training data yielded no usable items",
    ):
        Trainer(load_recipe(RECIPE, base), out_dir=tmp_path / "r2", quiet=True).fit()
