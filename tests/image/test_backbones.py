"""The ``timm`` and ``torchvision`` encoder entries (ssl_toolkit/image/backbones.py): features, local weights,
clear errors, no download, and BYOL training through the real trainer with tiny timm models on 32×32 images."""

import csv
import math
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from torch import nn

from ssl_toolkit.recipe import RecipeError, import_components, load_recipe
from ssl_toolkit.registry import ENCODERS
from ssl_toolkit.training.trainer import Trainer

try:
    import timm
    from safetensors.torch import save_file  # installed with timm
except ImportError:  # the optional extra: the torchvision tests still run
    timm = None
needs_timm = pytest.mark.skipif(timm is None, reason="the timm extra is not installed (pip install -e .[timm])")

import_components()  # registers the entries

ROOT = Path(__file__).resolve().parents[2]
CPU_RECIPE = ROOT / "recipes" / "image" / "byol_cifar10_cpu.yaml"
X = torch.rand(2, 3, 32, 32)


def _timm_reference(model, **kwargs):
    """A timm model with a 10-way classifier (the keys a file from elsewhere would have)."""
    torch.manual_seed(0)
    return timm.create_model(model, pretrained=False, num_classes=10, **kwargs)


@needs_timm
@pytest.mark.parametrize(
    "model, options, width",
    [
        ("test_vit", {"img_size": 32}, 64),
        ("test_convnext", {}, 64),
        ("test_resnet", {}, 96),
        ("test_mambaout", {}, 256),  # a head MLP after the trunk: 64 trunk features, 256 pre-logits features
    ],
)
def test_timm_feature_dim_is_the_output_width(model, options, width):
    enc = ENCODERS.build("timm", model=model, options=options).eval()
    assert enc.feature_dim == width and enc.modality == "image"
    assert enc(X).shape == (2, width)
    assert all(k.startswith("net.") for k in enc.state_dict())


@needs_timm
def test_timm_in_chans_and_options_reach_the_model():
    enc = ENCODERS.build("timm", model="test_vit", in_chans=1, options={"img_size": 32, "embed_dim": 48})
    assert enc.feature_dim == 48 and enc.net.patch_embed.proj.in_channels == 1
    assert enc.eval()(torch.rand(2, 1, 32, 32)).shape == (2, 48)


@pytest.mark.parametrize(
    "name, model, suggestion",
    [
        pytest.param("timm", "vit_smal_patch16_224", "vit_small_patch16_224", marks=needs_timm),
        ("torchvision", "resnet5", "resnet50"),
    ],
)
def test_unknown_model_names_suggest_the_closest(name, model, suggestion):
    expected = rf"encoder '{name}': unknown .*model '{model}' \(did you mean '{suggestion}'\?\)"
    with pytest.raises(ValueError, match=expected):
        ENCODERS.build(name, model=model)


@needs_timm
@pytest.mark.parametrize("suffix, wrap", [(".safetensors", False), (".pt", False), (".pth", True)])
def test_timm_pretrained_path_round_trip_drops_the_classifier(tmp_path, suffix, wrap):
    ref = _timm_reference("test_convnext")  # classifier 'head.fc': nested under a head that keeps its norm
    state = ref.state_dict()
    assert {"head.fc.weight", "head.fc.bias", "head.norm.weight"} <= set(state)
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(path))
    else:
        torch.save({"model": state} if wrap else state, path)
    enc = ENCODERS.build("timm", model="test_convnext", pretrained_path=str(path)).eval()
    ref.reset_classifier(0)
    assert torch.equal(enc(X), ref.eval()(X))
    fresh = ENCODERS.build("timm", model="test_convnext").eval()
    assert not torch.equal(fresh(X), enc(X))  # the weights came from the file, not from the same seed


@needs_timm
def test_a_file_of_another_shape_names_the_file_key_and_both_shapes(tmp_path):
    path = tmp_path / "vit64.safetensors"
    save_file(_timm_reference("test_vit", img_size=64).state_dict(), str(path))
    with pytest.raises(ValueError) as e:
        ENCODERS.build("timm", model="test_vit", pretrained_path=str(path), options={"img_size": 32})
    msg = str(e.value)
    assert msg.startswith(f"encoder 'timm': {path} does not fit the model: ")
    assert "shape mismatch pos_embed: file (1, 17, 64) vs model (1, 5, 64)" in msg


@needs_timm
def test_a_file_of_another_model_names_missing_and_unexpected_keys(tmp_path):
    path = tmp_path / "resnet.pt"
    torch.save(_timm_reference("test_resnet").state_dict(), path)
    expected = r"does not fit the model: missing \['blocks\.0\.attn\.proj\.bias', .*; unexpected \['bn1\.bias'"
    with pytest.raises(ValueError, match=expected):
        ENCODERS.build("timm", model="test_vit", pretrained_path=str(path), options={"img_size": 32})


@pytest.mark.parametrize(
    "name, model, key",
    [
        pytest.param("timm", "test_resnet", "pretrained_path", marks=needs_timm),
        ("torchvision", "resnet18", "weights_path"),
    ],
)
def test_missing_and_unreadable_weight_files_are_clear_errors(tmp_path, name, model, key):
    missing = tmp_path / "nope.safetensors"
    with pytest.raises(ValueError, match=rf"^encoder '{name}': weights file not found: {missing}$"):
        ENCODERS.build(name, model=model, **{key: str(missing)})
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=rf"^encoder '{name}': cannot read weights file {garbage}: "):
        ENCODERS.build(name, model=model, **{key: str(garbage)})
    not_tensors = tmp_path / "list.pt"
    torch.save([1, 2, 3], not_tensors)
    with pytest.raises(ValueError, match=rf"^encoder '{name}': {not_tensors} holds no state dict \(expected a mapping"):
        ENCODERS.build(name, model=model, **{key: str(not_tensors)})


@pytest.mark.parametrize(
    "name, options, key",
    [
        pytest.param("timm", {"pretrained": True}, "pretrained", marks=needs_timm),
        pytest.param("timm", {"checkpoint_path": "x.pth"}, "checkpoint_path", marks=needs_timm),
        pytest.param("timm", {"num_classes": 10}, "num_classes", marks=needs_timm),
        ("torchvision", {"weights": "DEFAULT"}, "weights"),
    ],
)
def test_download_and_classifier_options_are_refused(name, options, key):
    with pytest.raises(ValueError, match=rf"encoder '{name}': options\.{key} is not accepted: .*nothing is downloaded"):
        ENCODERS.build(name, model="resnet18", options=options)


def test_a_pretrained_flag_in_a_recipe_is_a_recipe_error():
    with pytest.raises(RecipeError, match=r"key 'model\.encoder\.pretrained': encoder 'timm' has no parameter"):
        load_recipe(CPU_RECIPE, ["model.encoder={name: timm, model: test_vit, pretrained: true}"])
    with pytest.raises(RecipeError, match=r"key 'model\.encoder\.in_chans': expected a value in \[1, inf\), got 0"):
        load_recipe(CPU_RECIPE, ["model.encoder={name: timm, model: test_vit, in_chans: 0}"])


@needs_timm
def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match=r"options must be a mapping of keyword arguments for the model, got 5"):
        ENCODERS.build("timm", model="test_vit", options=5)
    with pytest.raises(ValueError, match=r"cannot build 'test_vit' with options \{'bogus': 1\}: .*'bogus'"):
        ENCODERS.build("timm", model="test_vit", options={"bogus": 1})


def test_without_timm_the_entry_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` raise ImportError
    with pytest.raises(ValueError, match=r"^encoder 'timm' needs the timm package: pip install -e \.\[timm\]$"):
        ENCODERS.build("timm", model="test_vit")


@needs_timm
def test_building_never_reaches_the_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an encoder builder tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    assert ENCODERS.build("timm", model="test_vit", options={"img_size": 32}).feature_dim == 64
    assert ENCODERS.build("torchvision", model="resnet18").feature_dim == 512


def test_registering_the_entries_imports_neither_library():
    code = "import sys, ssl_toolkit.components; print('timm' in sys.modules, 'torchvision' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_torchvision_resnet18_gives_512_features_and_loads_a_torchvision_state_dict(tmp_path):
    torch.manual_seed(0)
    ref = torchvision.models.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(ref.state_dict(), path)  # with fc.weight / fc.bias: dropped on loading
    enc = ENCODERS.build("torchvision", model="resnet18", weights_path=str(path)).eval()
    assert enc.feature_dim == 512 and enc.modality == "image" and isinstance(enc.net.fc, nn.Identity)
    assert not any(k.startswith("net.fc.") for k in enc.state_dict())
    ref.fc = nn.Identity()
    out = enc(X)
    assert out.shape == (2, 512) and torch.equal(out, ref.eval()(X))


def test_torchvision_removes_the_last_linear_wherever_it_is():
    enc = ENCODERS.build("torchvision", model="mobilenet_v3_small")  # Linear 576→1024 … Linear 1024→1000
    assert enc.feature_dim == 1024 and isinstance(enc.net.classifier[3], nn.Identity)
    assert enc.eval()(X).shape == (2, 1024)


def test_torchvision_weights_of_another_model_name_the_keys(tmp_path):
    path = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34(weights=None).state_dict(), path)
    expected = rf"^encoder 'torchvision': {path} does not fit the model: unexpected \['layer1\.2"
    with pytest.raises(ValueError, match=expected):
        ENCODERS.build("torchvision", model="resnet18", weights_path=str(path))


@needs_timm
def test_the_vit_small_imagenet_recipe_validates_and_builds():
    recipe = load_recipe(ROOT / "recipes" / "image" / "byol_vit_small_imagenet.yaml", check_files=False)
    assert dict(recipe.model.encoder) == {"name": "timm", "model": "vit_small_patch16_224"}
    o = recipe.optimizer
    assert (o.name, o.lr, o.lr_scaling, o.weight_decay, o.exclude_bias_and_norm) == (
        "adamw",
        1.5e-4,
        "linear",
        0.1,
        False,
    )
    assert recipe.ema.tau_base == 0.99 and recipe.trainer.epochs == 300 and recipe.data.batch_size == 4096
    assert recipe.schedule["warmup_epochs"] == 40
    assert ENCODERS.build("timm", **recipe.model.encoder.params).feature_dim == 384


@needs_timm
@pytest.mark.parametrize(
    "encoder",
    [
        {"name": "timm", "model": "test_vit", "options": {"img_size": 32}},
        {"name": "timm", "model": "test_resnet"},
    ],
)
def test_byol_trains_three_steps_with_a_tiny_timm_model_on_32px_images(tmp_path, encoder):
    rng = np.random.default_rng(0)
    npz = tmp_path / "tiny.npz"
    np.savez(npz, x_train=rng.integers(0, 256, (32, 32, 32, 3), dtype=np.uint8), y_train=np.arange(32) % 4)
    spec = "{" + ", ".join(f"{k}: {v}" for k, v in encoder.items()) + "}"
    overrides = [
        f"model.encoder={spec}",
        f"data.dataset.path={npz}",
        "data.batch_size=8",
        "precision=fp32",
        "model.projector.hidden_dim=64",
        "model.projector.out_dim=32",
        "model.predictor.hidden_dim=64",
        "model.predictor.out_dim=32",
        "trainer.max_steps=3",
        "trainer.log_every=1",
        "trainer.hooks=[]",
        "trainer.checkpoint_every=1000",
        "trainer.progress=false",
        "trainer.tensorboard=false",
    ]
    run = Trainer(load_recipe(CPU_RECIPE, overrides), out_dir=tmp_path / "run", quiet=True).fit()
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    assert all(math.isfinite(float(r["loss"])) for r in rows)
    state = torch.load(run / "encoder.pt", weights_only=True)["state_dict"]
    params = {k: v for k, v in encoder.items() if k != "name"}
    trained = ENCODERS.build("timm", **params)
    trained.load_state_dict(state)  # strict: encoder.pt holds exactly the entry's net.* keys
    reloaded = ENCODERS.build("timm", pretrained_path=str(run / "encoder.pt"), **params)  # encoder.pt as local weights
    feats = trained.eval()(X)
    assert feats.shape == (2, trained.feature_dim) and torch.isfinite(feats).all()
    assert torch.equal(reloaded.eval()(X), feats)
