"""The weights card: written into encoder.pt and checkpoints, read by eval and HEAR; files written before
cards existed (tests/data/legacy, made by the pre-card code) still load and embed exactly as they did."""

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from ssl_toolkit import checkpoint as ckpt
from ssl_toolkit.eval.checkpoints import resolve_checkpoint
from ssl_toolkit.eval.models import make_models
from ssl_toolkit.recipe import import_components, load_recipe
from ssl_toolkit.registry import AUGMENTATIONS
from ssl_toolkit.training.trainer import Trainer
from ssl_toolkit.weights_card import WeightsCard, card_from_recipe

ROOT = Path(__file__).resolve().parents[1]
LEGACY = ROOT / "tests" / "data" / "legacy"
NO_MODEL = SimpleNamespace(encoder=None, frontend=None, override=False)
FAST = ["trainer.tensorboard=false", "trainer.progress=false", "trainer.max_steps=2", "trainer.log_every=1"]


def embed(model, x):
    with torch.no_grad():
        for op in model.frontend:
            x = op(x, None)
        return model.encoder(x)


@pytest.mark.parametrize("run", ["tensor_run", "audio_run"])
def test_files_written_before_cards_load_and_embed_as_before(run, tmp_path):
    src_dir = tmp_path / run
    shutil.copytree(LEGACY / run, src_dir)
    expected = torch.load(src_dir / "expected_embeddings.pt", weights_only=True)
    assert not ckpt.TrainingState.load(src_dir / "checkpoints/last.pt").card  # really a pre-card file
    for spec in (src_dir, src_dir / "checkpoints/last.pt", src_dir / "encoder.pt"):
        model, _ = make_models(resolve_checkpoint(str(spec)), NO_MODEL, want_random=False, prenorm="checkpoint")
        want = expected[spec.name]
        assert model.encoder_spec == want["encoder"] and model.frontend_spec == want["frontend"]
        if spec.name == "encoder.pt" and run == "audio_run":  # no statistics stored with a bare state dict
            assert not bool(model.frontend[1].ready)
            continue
        # fp32 kernels round differently on other CPUs: equal within float32 rounding, not bit for bit
        torch.testing.assert_close(
            embed(model, expected["input"]), want["embedding"], rtol=1e-4, atol=1e-5, msg=str(spec)
        )


def test_legacy_checkpoint_resumes(tmp_path):
    run = tmp_path / "run"
    shutil.copytree(LEGACY / "tensor_run", run)
    recipe = load_recipe(run / "recipe.yaml", ["trainer.max_steps=4", "trainer.progress=false"])
    Trainer(recipe, out_dir=run, resume="auto", quiet=True).fit()
    assert ckpt.TrainingState.load(run / "checkpoints/last.pt").step == 4


def test_legacy_audio_run_gives_the_same_hear_embeddings(tmp_path):
    from ssl_toolkit import hear

    shutil.copytree(LEGACY / "audio_run", tmp_path / "audio_run")
    expected = torch.load(tmp_path / "audio_run/expected_embeddings.pt", weights_only=True)
    model = hear.load_model(str(tmp_path / "audio_run"))
    # the expected vectors were made when a HEAR scene embedding pooled the whole clip: one piece as long as the clip
    model.unit_sec = expected["input"].shape[1] / model.sample_rate
    torch.testing.assert_close(
        hear.get_scene_embeddings(expected["input"], model), expected["hear_scene"], rtol=1e-4, atol=1e-5
    )


def test_new_run_files_carry_the_card_and_it_matches_the_views(tmp_path, tensor_recipe):
    out = Trainer(
        load_recipe(
            ROOT / "recipes/audio/byola_fsdd.yaml",
            [
                *FAST,
                "model.encoder.feature_d=64",
                "model.projector.hidden_dim=32",
                "model.predictor.hidden_dim=32",
                "data.batch_size=16",
                "views.branches.0.0.n_memory=16",
                "views.branches.1.0.n_memory=16",
            ],
        ),
        out_dir=tmp_path / "run",
        quiet=True,
    ).fit()
    enc_file = torch.load(out / "encoder.pt", weights_only=True)
    state = ckpt.TrainingState.load(out / "checkpoints/last.pt")
    assert enc_file["format"] == ckpt.ENCODER_FORMAT and enc_file["card"] == state.card
    card = WeightsCard.from_dict(state.card)
    assert [s["name"] for s in card.frontend] == ["log_mel", "pre_norm"] and card.feature_dim == 64
    assert card.encoder == {"name": "audiontt2020", "n_mels": 64, "feature_d": 64}
    assert float(card.frontend_state[1]["mean"]) == float(state.views["input.ops.1.mean"])
    assert card == card_from_recipe(state.recipe, state.views, 64)  # one rule for new and old files
    for entry in (out, out / "encoder.pt"):  # eval takes encoder and front end from the card
        model, _ = make_models(resolve_checkpoint(str(entry)), NO_MODEL, want_random=False, prenorm="checkpoint")
        assert model.source == "weights card" and float(model.frontend[1].mean) == float(card.frontend_state[1]["mean"])
        assert torch.equal(model.encoder.state_dict()["fc.0.weight"], enc_file["state_dict"]["fc.0.weight"])
    # the eval recipe's own pre_norm (prenorm: task) starts fresh
    model, _ = make_models(resolve_checkpoint(str(out)), NO_MODEL, want_random=False, prenorm="task")
    assert not bool(model.frontend[1].ready)


def test_frontend_rule_over_every_registered_op():
    """A card holds exactly the ops marked eval_frontend, from views.input and views.joint, never a branch op."""
    import_components()
    names = [e.name for e in AUGMENTATIONS]
    marked = {n for n in names if getattr(AUGMENTATIONS.get(n).builder, "eval_frontend", False)}
    assert {"to_float", "normalize", "log_mel", "pre_norm"} <= marked
    assert not marked & {"post_norm", "mixup", "random_resized_crop", "random_resize_crop", "horizontal_flip"}
    recipe = {
        "model": {"encoder": {"name": "x"}},
        "views": {
            "input": [{"name": n} for n in names],
            "branches": [[{"name": "normalize"}]],
            "joint": [{"name": n} for n in names],
        },
    }
    card = card_from_recipe(recipe)
    assert [s["name"] for s in card.frontend] == [n for n in names if n in marked] * 2


def test_init_only_parameters_stay_out_of_the_card():
    """Where an encoder's first weights came from (timm's pretrained_path, torchvision's weights_path) is no part
    of the card: the file holds the weights, and eval must not need the original file."""
    import inspect

    from ssl_toolkit.registry import ENCODERS

    import_components()
    declared = {e.name: getattr(e.builder, "init_only", ()) for e in ENCODERS}
    assert declared["timm"] == ("pretrained_path",) and declared["torchvision"] == ("weights_path",)
    for name, params in declared.items():
        assert set(params) <= set(inspect.signature(ENCODERS.get(name).builder).parameters), name
    recipe = {"model": {"encoder": {"name": "timm", "model": "test_vit", "pretrained_path": "/gone/w.safetensors"}}}
    assert card_from_recipe(recipe).encoder == {"name": "timm", "model": "test_vit"}


def test_disagreements_count_what_the_card_leaves_out_as_the_builder_default():
    from ssl_toolkit.weights_card import WeightsCard

    import_components()  # the registered builders, whose defaults fill in what a card leaves out
    card = WeightsCard(
        encoder={"name": "resnet18", "width": 0.5},  # norm, cifar_stem... left at their defaults
        frontend=[{"name": "to_float"}, {"name": "normalize", "mean": [0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]}],
        frontend_state=[{}, {}],
    )
    assert card.disagreements({"name": "resnet18", "width": 0.5, "norm": "bn", "cifar_stem": False}, None) == []
    assert card.disagreements({"norm": "gn"}, None) == ["encoder norm='gn' (the weights': 'bn')"]
    assert card.disagreements(None, [{"name": "to_float"}, {"name": "normalize", "mean": (0.5, 0.5, 0.5)}]) == []
    assert card.disagreements(None, [{"name": "to_float"}]) == [
        "frontend ['to_float'] (the weights': ['to_float', 'normalize'])"
    ]
    tv = WeightsCard(encoder={"name": "torchvision", "model": "resnet18"}, frontend=[], frontend_state=[])
    assert tv.disagreements({"name": "torchvision", "model": "resnet18", "weights_path": "/tmp/r18.pth"}, None) == []
