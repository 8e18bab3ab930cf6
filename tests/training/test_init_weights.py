"""model.init_from: the online encoder and every EMA target start from the given weights; resume does not
re-initialize; mismatches, missing files and a changed file are errors naming the recipe key."""

from pathlib import Path

import pytest
import torch
import yaml

from ssl_toolkit import checkpoint as ckpt
from ssl_toolkit.engine.build import build_method
from ssl_toolkit.recipe import RecipeError, load_recipe
from ssl_toolkit.training.init_weights import InitError, initialize_encoder
from ssl_toolkit.training.trainer import Trainer, TrainingError

FAST = ["trainer.tensorboard=false", "trainer.progress=false", "trainer.log_every=1", "trainer.checkpoint_every=1"]
SHARED = Path(__file__).resolve().parents[3] / "shared"


def train(recipe, out, overrides, **kw) -> Path:
    return Trainer(load_recipe(recipe, [*FAST, *overrides]), out_dir=out, quiet=True, **kw).fit()


@pytest.fixture
def source_run(tensor_recipe, tmp_path):
    """A finished tensor run: its encoder.pt / encoder.safetensors are the weights to start from."""
    return train(tensor_recipe, tmp_path / "source", ["trainer.max_steps=3", "seed=1"])


def encoder_weights(path: Path) -> dict:
    return ckpt.encoder_file_contents(torch.load(path, weights_only=True))[0]


@pytest.mark.parametrize("which", ["encoder.pt", "encoder.safetensors", "run dir", "checkpoints/last.pt"])
def test_online_encoder_and_targets_start_from_the_weights(tensor_recipe, source_run, which):
    source = encoder_weights(source_run / "encoder.pt")
    method = build_method(load_recipe(tensor_recipe, ["model.predictor.name=directpred"]))  # 2nd: targets
    spec = str(source_run if which == "run dir" else source_run / which)
    path, digest = initialize_encoder(method, spec, True, None, lambda _: None)
    for net in (method.encoder, *(t.encoder for t in method.targets)):
        got = net.state_dict()
        assert set(got) == set(source) and all(torch.equal(got[k], source[k]) for k in source)
    assert path.exists() and len(digest) == 64


def test_a_run_from_init_from_records_path_and_sha256_and_its_targets_start_as_copies(
    tensor_recipe, source_run, tmp_path
):
    """τ = 1 keeps the target exactly at its start: after a step it still equals the source weights, so the target
    started as a copy of them; the online encoder moved from them by one optimizer step."""
    source = encoder_weights(source_run / "encoder.pt")
    run = train(
        tensor_recipe,
        tmp_path / "run",
        [
            "trainer.max_steps=1",
            "ema.tau_base=1.0",
            "ema.schedule=constant",
            f"model.init_from={source_run / 'encoder.pt'}",
        ],
    )
    state = ckpt.TrainingState.load(run / "checkpoints" / "last.pt")
    target = {k[len("targets.0.encoder.") :]: v for k, v in state.method.items() if k.startswith("targets.0.encoder.")}
    params = [k for k in source if "running" not in k and "num_batches" not in k]
    assert all(torch.equal(target[k], source[k]) for k in params)
    online = state.encoder_state()
    assert all(torch.allclose(online[k], source[k], atol=0.1) for k in params)
    assert not all(torch.equal(online[k], source[k]) for k in params)
    recorded = yaml.safe_load((run / "recipe.yaml").read_text())["model"]
    assert recorded["init_from"] == str((source_run / "encoder.pt").resolve())
    assert recorded["init_sha256"] == ckpt_sha256(source_run / "encoder.pt")


def ckpt_sha256(path: Path) -> str:
    from ssl_toolkit.checkpoint import sha256_file

    return sha256_file(path)


def test_resume_does_not_reinitialize(tensor_recipe, source_run, tmp_path):
    """A run resumed from its step-2 checkpoint ends where the straight run ends: the resume keeps the checkpoint's
    weights (initializing again would start step 3 from the source weights)."""
    import shutil

    init = ["trainer.max_steps=4", f"model.init_from={source_run / 'encoder.pt'}"]
    straight = train(tensor_recipe, tmp_path / "straight", init)
    shutil.copytree(straight, tmp_path / "resumed")
    for path in (tmp_path / "resumed" / "checkpoints").glob("*.pt"):
        if path.name != "step_2.pt":
            path.unlink()
    resumed = train(tensor_recipe, tmp_path / "resumed", init, resume="auto")
    a = ckpt.TrainingState.load(straight / "checkpoints" / "last.pt").method
    b = ckpt.TrainingState.load(resumed / "checkpoints" / "last.pt").method
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (resumed / "recipe.until-step-2.yaml").exists()  # the recorded init keys did not flip on resume


def test_missing_file_and_changed_file_name_the_key(tensor_recipe, source_run, tmp_path):
    with pytest.raises(RecipeError, match=r"key 'model.init_from': .*nope.pt': no such file or folder"):
        train(tensor_recipe, tmp_path / "a", ["trainer.max_steps=1", f"model.init_from={tmp_path / 'nope.pt'}"])
    with pytest.raises(TrainingError, match=r"model.init_sha256: .* has sha256 [0-9a-f]{64}, the recipe expects abc0"):
        train(
            tensor_recipe,
            tmp_path / "b",
            ["trainer.max_steps=1", f"model.init_from={source_run / 'encoder.pt'}", "model.init_sha256=abc0"],
        )
    assert not (tmp_path / "a" / "checkpoints").exists()


def test_mismatch_is_an_error_naming_keys_and_shapes_unless_not_strict(tensor_recipe, source_run):
    wider = build_method(load_recipe(tensor_recipe, ["model.encoder.hidden_dim=48"]))
    with pytest.raises(
        InitError,
        match=r"does not fit the recipe's model.encoder: shape mismatch .*file \(32, 16\) "
        r"vs model \(48, 16\).*init_strict: false",
    ):
        initialize_encoder(wider, str(source_run / "encoder.pt"), True, None, print)
    lines = []
    before = {k: v.clone() for k, v in wider.encoder.state_dict().items()}
    initialize_encoder(wider, str(source_run / "encoder.pt"), False, None, lines.append)
    after, source = wider.encoder.state_dict(), encoder_weights(source_run / "encoder.pt")
    same_shape = [k for k in source if source[k].shape == after[k].shape]
    assert same_shape and all(torch.equal(after[k], source[k]) for k in same_shape)
    assert all(torch.equal(after[k], before[k]) for k in after if k not in same_shape)
    assert any("not loaded:" in line and "model has (48, 16)" in line for line in lines)


def test_torchvision_resnet_weights_load_without_their_classifier():
    import torchvision

    from ssl_toolkit.registry import ENCODERS

    torch.manual_seed(0)
    tv = torchvision.models.resnet18(weights=None)
    state = tv.state_dict()
    own = ENCODERS.build("resnet18").state_dict()
    from ssl_toolkit.training.init_weights import fit_to

    fitting, left = fit_to(own, state, True, "resnet18.pth")
    assert set(fitting) == set(own) and left == [
        "classifier fc.weight (not part of the encoder)",
        "classifier fc.bias (not part of the encoder)",
    ]


def test_official_byola_weights_initialize_audiontt2020(tmp_path):
    official = SHARED / "fixtures" / "byola" / "audiontt2020_d512_random.pth"
    if not official.is_file():
        pytest.skip("official BYOL-A fixtures not found (../shared/fixtures/byola)")
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "audio" / "byola_v1.yaml"
    method = build_method(
        load_recipe(
            recipe,
            [
                "data.dataset.root=data/demo/fsdd_mini",
                "model.encoder.feature_d=512",
                "model.projector.hidden_dim=32",
                "model.predictor.hidden_dim=32",
            ],
        )
    )
    initialize_encoder(method, str(official), True, None, lambda _: None)
    want = torch.load(official, weights_only=True)
    got = method.encoder.state_dict()
    assert all(torch.equal(got[k], want[k]) for k in want if k in got) and set(want) <= set(got)
