"""ssl_toolkit.hear against the HEAR 2021 API, checked by PyPI's hearvalidator (2021.0.2).

hearvalidator imports tensorflow at module top only for TensorFlow models; it is installed with
``pip install --no-deps hearvalidator==2021.0.2`` and a stub stands in for tensorflow here.
"""

import importlib.machinery
import re
import sys
import types
import warnings
from pathlib import Path

import pytest
import torch

import ssl_toolkit.hear as hear
from ssl_toolkit.eval.models import write_random_checkpoint
from ssl_toolkit.recipe import load_recipe
from ssl_toolkit.registry import ENCODERS

ROOT = Path(__file__).resolve().parents[1]


def tiny_checkpoint(path: Path, encoder: str = "audiontt2020", stats: bool = True, **enc) -> Path:
    recipe = ROOT / "recipes" / "audio" / ("byola_v2.yaml" if encoder == "audiontt2022" else "byola_v1.yaml")
    overrides = [
        "data.dataset.root=data/demo/fsdd_mini",
        "model.projector.hidden_dim=32",
        "model.predictor.hidden_dim=32",
        *[f"model.encoder.{k}={v}" for k, v in enc.items()],
    ]
    if stats:
        overrides += ["views.input.1.mean=-6.0", "views.input.1.std=4.5"]
    return write_random_checkpoint(load_recipe(recipe, overrides), path)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("hear") / "checkpoints" / "last.pt", feature_d=64)


def import_validator(monkeypatch):
    try:
        import hearvalidator  # noqa: F401
    except ImportError:
        pytest.skip("hearvalidator is not installed (pip install --no-deps hearvalidator==2021.0.2)")
    tf = types.ModuleType("tensorflow")
    tf.__spec__ = importlib.machinery.ModuleSpec("tensorflow", None)

    class Module:  # what the validator tests isinstance() against for TF models
        pass

    tf.Module = Module
    monkeypatch.setitem(sys.modules, "tensorflow", tf)
    sys.modules.pop("hearvalidator.validate", None)
    from hearvalidator.validate import ValidateModel

    return ValidateModel


def test_hearvalidator_passes(checkpoint, monkeypatch, capsys):
    ValidateModel = import_validator(monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # incl. the validator's '> 50 ms between timestamps' warning
        ValidateModel("ssl_toolkit.hear", str(checkpoint), device="cpu")()
    out = capsys.readouterr().out
    assert "Interval between timestamps is 40.0ms" in out


def test_hearvalidator_on_a_run_dir_of_a_v2_model(tmp_path, monkeypatch):
    ValidateModel = import_validator(monkeypatch)
    ckpt = tiny_checkpoint(
        tmp_path / "run" / "checkpoints" / "last.pt", "audiontt2022", feature_d=1040, mlp_hidden_d=32
    )
    ValidateModel("ssl_toolkit.hear", str(ckpt.parent.parent), device="cpu")()


def test_api_contract(checkpoint):
    model = hear.load_model(str(checkpoint))
    assert isinstance(model, torch.nn.Module)
    for name in ("sample_rate", "scene_embedding_size", "timestamp_embedding_size"):
        assert type(getattr(model, name)) is int
    assert model.sample_rate == 16000 and model.scene_embedding_size == 64
    sr = model.sample_rate
    audio = torch.rand(3, int(1.3 * sr)) * 2 - 1
    emb, ts = hear.get_timestamp_embeddings(audio, model)
    assert emb.dtype == torch.float32 and ts.dtype == torch.float32
    assert emb.shape[:2] == ts.shape and emb.shape[0] == 3 and emb.shape[2] == model.timestamp_embedding_size
    diffs = torch.diff(ts, dim=1)
    assert torch.allclose(diffs, diffs[0, 0].expand_as(diffs)) and float(diffs[0, 0]) <= 50.0
    assert float(ts.min()) >= 0.0 and float(ts.max()) <= 1300.0  # inside the audio
    scene = hear.get_scene_embeddings(audio, model)
    assert scene.shape == (3, 64) and scene.dtype == torch.float32
    # the scene embedding is the mean of the encoder's clip embeddings of unit_sec pieces (the last one ending with
    # the sound), the rule of ssl-toolkit embed and eval
    unit = round(model.unit_sec * sr)
    assert model.unit_sec == 0.95 and audio.shape[1] > unit
    with torch.no_grad():
        ref = (model.encoder(model.features(audio[:, :unit])) + model.encoder(model.features(audio[:, -unit:]))) / 2
    assert torch.allclose(scene, ref, atol=1e-5)
    # one sound at a time gives the same embeddings (no batch statistics)
    assert torch.allclose(hear.get_scene_embeddings(audio[1:2], model), scene[1:2], atol=1e-5)
    # very short sounds still give at least one frame
    e2, t2 = hear.get_timestamp_embeddings(torch.zeros(2, 400), model)
    assert e2.shape[1] >= 1 and t2.shape == e2.shape[:2]


@pytest.mark.parametrize("seconds", [0.37, 0.45, 0.5, 1.234, 3.0])
def test_timestamps_are_the_centres_of_the_pooled_frames(checkpoint, seconds):
    """AudioNTT2020 pools 8 log-mel frames (10 ms apart, frame j centred at j·10 ms) per output frame; with the
    half-period shift the timestamps are (4k + 3.5)·10 ms, 40 ms apart, whatever the clip length (the frame
    period is the encoder's frame_stride, not an estimate from the frame counts)."""
    model = hear.load_model(str(checkpoint))
    emb, ts = hear.get_timestamp_embeddings(torch.zeros(1, int(seconds * 16000)), model)
    k = torch.arange(ts.shape[1], dtype=torch.float32)
    torch.testing.assert_close(ts[0], (4 * k + 3.5) * 10.0)
    mel_frames = int(seconds * 16000) // 160 + 1
    assert ts.shape[1] == 2 * ((mel_frames - 4) // 8)  # both passes, cut to the shifted one's frames


def test_pre_norm_statistics_come_from_the_checkpoint(checkpoint):
    model = hear.load_model(str(checkpoint))
    norm = model.frontend[1]
    assert float(norm.mean) == -6.0 and float(norm.std) == 4.5


def test_official_weights_without_statistics_use_per_clip_normalization(tmp_path):
    enc = ENCODERS.build("audiontt2020", feature_d=48)
    path = tmp_path / "AudioNTT2020-BYOLA-64x96d48.pth"
    torch.save(enc.state_dict(), path)
    with pytest.warns(UserWarning, match="no pre_norm statistics"):
        model = hear.load_model(str(path))
    assert model.scene_embedding_size == 48 and type(model.frontend[1]).__name__ == "ClipNorm"
    assert hear.get_scene_embeddings(torch.rand(2, 16000), model).shape == (2, 48)


def test_load_model_default_and_errors(tmp_path):
    with pytest.warns(UserWarning):
        model = hear.load_model()
    assert model.scene_embedding_size == 2048
    enc = ENCODERS.build("resnet18", cifar_stem=True, width=0.125)
    torch.save(enc.state_dict(), tmp_path / "encoder.pt")
    with pytest.raises(Exception, match="no recipe to say which encoder they are: pass encoder="):
        hear.load_model(str(tmp_path / "encoder.pt"))


@pytest.mark.parametrize(
    "audio, words",
    [
        (torch.full((2, 16000), float("nan")), "HEAR audio: clip 0 contains NaN or inf samples"),
        (
            torch.cat([torch.zeros(1, 8000), torch.tensor([[0.1] * 7999 + [float("inf")]])]),
            "HEAR audio: clip 1 contains NaN or inf samples",
        ),
        (torch.tensor([[0.0] * 7999 + [32767.0]] * 2), "clip 0 peaks at 3.277e+04; expected audio in [-1, 1]"),
        (torch.zeros(2, 8000, dtype=torch.int16), "has torch.int16 samples; expected floating-point audio"),
        (torch.zeros(2, 2, 8000), "HEAR audio must be (n_sounds, n_samples)"),
    ],
)
def test_bad_audio_is_refused_by_both_entry_points(checkpoint, audio, words):
    model = hear.load_model(str(checkpoint))
    for entry in (hear.get_scene_embeddings, hear.get_timestamp_embeddings):
        with pytest.raises((ValueError, TypeError), match=re.escape(words)):
            entry(audio, model)


def test_zero_sounds_give_empty_embeddings_of_the_right_shape(checkpoint):
    model = hear.load_model(str(checkpoint))
    scene = hear.get_scene_embeddings(torch.zeros(0, 16000), model)
    assert scene.shape == (0, 64) and scene.dtype == torch.float32
    emb, ts = hear.get_timestamp_embeddings(torch.zeros(0, 16000), model)
    assert emb.shape == (0, 0, 64) and ts.shape == (0, 0) and emb.dtype == ts.dtype == torch.float32
    loud = hear.get_scene_embeddings(torch.full((1, 16000), 1.5), model)  # resampling overshoot is accepted
    assert torch.isfinite(loud).all()
