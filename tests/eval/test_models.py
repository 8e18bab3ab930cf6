"""What --checkpoint accepts and how the encoder and front end are found."""

import pytest
import torch
import yaml

from ssl_toolkit.eval.checkpoints import infer_audiontt, resolve_checkpoint
from ssl_toolkit.eval.errors import EvalError
from ssl_toolkit.eval.models import make_models
from ssl_toolkit.eval.schema import ModelSpec
from ssl_toolkit.recipe import Component
from ssl_toolkit.registry import ENCODERS


def test_run_dir_and_checkpoint_file(tiny_audio_checkpoint):
    ckpt = tiny_audio_checkpoint(seed=5)
    for spec in (str(ckpt.parent.parent), str(ckpt)):
        src = resolve_checkpoint(spec)
        assert src.kind == "checkpoint" and src.path == ckpt and len(src.checksum) == 64
        model, rnd = make_models(src, ModelSpec(), prenorm="checkpoint")
        assert model.feature_dim == 64 and model.source == "weights card"
        assert float(model.frontend[1].mean) == -6.0  # pre_norm statistics restored from the views state
        state = torch.load(ckpt, weights_only=True)["method"]
        assert torch.equal(model.encoder.state_dict()["fc.0.weight"], state["online.encoder.fc.0.weight"])
        assert not torch.equal(rnd.encoder.state_dict()["fc.0.weight"], state["online.encoder.fc.0.weight"])
        assert rnd.encoder_spec == model.encoder_spec and rnd.identity.startswith("random:")


def test_run_dir_falls_back_to_an_older_checkpoint(tiny_audio_checkpoint):
    ckpt = tiny_audio_checkpoint()
    older = ckpt.parent / "step_00000010.pt"
    older.write_bytes(ckpt.read_bytes())
    ckpt.write_bytes(ckpt.read_bytes()[:200])  # truncated last.pt
    src = resolve_checkpoint(str(ckpt.parent.parent))
    assert src.path == older


def test_encoder_pt_alone_needs_the_encoder_named(tmp_path):
    enc = ENCODERS.build("resnet18", cifar_stem=True, width=0.125)
    path = tmp_path / "encoder.pt"
    torch.save(enc.state_dict(), path)
    src = resolve_checkpoint(str(path))
    assert src.kind == "encoder" and src.recipe is None
    with pytest.raises(EvalError) as e:
        make_models(src, ModelSpec())
    msg = str(e.value)
    assert "encoder weights only" in msg and "name the encoder in the eval recipe" in msg and "model:" in msg
    model, _ = make_models(src, ModelSpec(encoder=Component(name="resnet18", cifar_stem=True, width=0.125)))
    assert model.feature_dim == enc.feature_dim and model.source == "eval recipe (model)"
    with pytest.raises(EvalError, match="do not fit"):
        make_models(src, ModelSpec(encoder=Component(name="resnet18", cifar_stem=True, width=0.25)))


def test_encoder_pt_in_a_run_dir_uses_the_runs_recipe(tmp_path, tiny_audio_checkpoint):
    ckpt = tiny_audio_checkpoint()
    run = ckpt.parent.parent
    state = torch.load(ckpt, weights_only=True)
    recipe = state["recipe"]
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    enc = {k[len("online.encoder.") :]: v for k, v in state["method"].items() if k.startswith("online.encoder.")}
    torch.save(enc, run / "encoder.pt")
    src = resolve_checkpoint(str(run / "encoder.pt"))
    assert src.kind == "encoder" and src.recipe is not None
    model, _ = make_models(src, ModelSpec())
    assert model.source == "checkpoint recipe" and model.feature_dim == 64


@pytest.mark.parametrize(
    "spec",
    [
        {"name": "audiontt2020", "n_mels": 64, "feature_d": 96, "norm": "bn"},
        {"name": "audiontt2022", "n_mels": 64, "feature_d": 1100, "mlp_hidden_d": 48, "norm": "bn"},
        {"name": "audiontt2020", "n_mels": 32, "feature_d": 40, "norm": "gn_ws"},
    ],
)
def test_official_weights_architecture_is_inferred(tmp_path, spec):
    enc = ENCODERS.build(spec["name"], **{k: v for k, v in spec.items() if k != "name"})
    assert infer_audiontt(enc.state_dict()) == spec
    path = tmp_path / "AudioNTT-BYOLA-64x96.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in enc.state_dict().items()}}, path)  # wrapped, prefixed
    src = resolve_checkpoint(str(path))
    assert src.kind == "official"
    model, rnd = make_models(src, ModelSpec())
    assert model.encoder_spec == spec and model.source == "inferred from the weights"
    expected_fe = "nnaudio_mel" if spec["name"] == "audiontt2022" else "torchaudio_mel"
    assert model.frontend_spec[0]["frontend"] == expected_fe and model.frontend_spec[1]["name"] == "pre_norm"


def test_random_needs_a_model_section_and_override_wins(tiny_audio_checkpoint):
    with pytest.raises(EvalError, match="'random' needs an encoder"):
        make_models(resolve_checkpoint("random"), ModelSpec())
    model, rnd = make_models(
        resolve_checkpoint("random"), ModelSpec(encoder=Component(name="audiontt2020", feature_d=32))
    )
    assert rnd is None and model.name == "random" and model.feature_dim == 32
    assert [f["name"] for f in model.frontend_spec] == ["log_mel", "pre_norm"]
    src = resolve_checkpoint(str(tiny_audio_checkpoint()))
    with pytest.raises(EvalError, match="do not fit"):  # override with another width: the weights do not fit
        make_models(src, ModelSpec(encoder=Component(name="audiontt2020", feature_d=32), override=True))


def test_bad_paths(tmp_path):
    with pytest.raises(EvalError, match="no such file or directory"):
        resolve_checkpoint(str(tmp_path / "nope.pt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(EvalError, match="not a usable run directory"):
        resolve_checkpoint(str(tmp_path / "empty"))
    (tmp_path / "junk.pt").write_bytes(b"junk")
    with pytest.raises(EvalError, match="corrupt"):
        resolve_checkpoint(str(tmp_path / "junk.pt"))


def test_weights_that_do_not_fit_the_recipe_model_use_the_inferred_architecture(tmp_path):
    enc = ENCODERS.build("audiontt2022", feature_d=1100, mlp_hidden_d=48)
    path = tmp_path / "AudioNTT2022-BYOLA.pth"
    torch.save(enc.state_dict(), path)
    src = resolve_checkpoint(str(path))
    cfg = ModelSpec(
        encoder=Component(name="audiontt2020", feature_d=2048),
        frontend=[Component(name="log_mel", frontend="torchaudio_mel"), Component(name="pre_norm")],
    )
    model, _ = make_models(src, cfg)
    assert model.encoder_spec["name"] == "audiontt2022" and model.frontend_spec[0]["frontend"] == "nnaudio_mel"
    assert any("does not fit" in n for n in src.notes)
    # weights that fit the recipe's model use it (and its front end)
    enc = ENCODERS.build("audiontt2020", feature_d=2048)
    torch.save(enc.state_dict(), path)
    model, _ = make_models(resolve_checkpoint(str(path)), cfg)
    assert model.source == "eval recipe (model)" and model.frontend_spec[0]["frontend"] == "torchaudio_mel"
