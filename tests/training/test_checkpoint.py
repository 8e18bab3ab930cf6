import os
import shutil

import pytest
import torch

from ssl_toolkit import checkpoint as ckpt


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned > /dev/null",))


def test_round_trip_weights_only(tmp_path):
    state = {"w": torch.arange(4.0), "step": 3, "nested": {"a": [1, 2]}}
    path = ckpt.atomic_save(state, tmp_path / "c.pt")
    back = ckpt.load_checkpoint(path)
    assert torch.equal(back["w"], state["w"]) and back["step"] == 3 and back["nested"] == {"a": [1, 2]}
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = ckpt.atomic_save({"v": torch.ones(2)}, tmp_path / "last.pt")

    def disk_full(obj, f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    with pytest.raises(OSError, match="No space left"):
        ckpt.atomic_save({"v": torch.zeros(2)}, path)
    monkeypatch.undo()
    assert torch.equal(ckpt.load_checkpoint(path)["v"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temp file left behind


def test_truncated_and_pickled_code_checkpoints_are_refused(tmp_path):
    good = ckpt.atomic_save({"v": torch.ones(1000)}, tmp_path / "good.pt")
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ckpt.CheckpointError, match="trunc.pt: truncated or corrupt"):
        ckpt.load_checkpoint(tmp_path / "trunc.pt")
    torch.save({"x": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(ckpt.CheckpointError, match="evil.pt: refused"):
        ckpt.load_checkpoint(tmp_path / "evil.pt")
    with pytest.raises(ckpt.CheckpointError, match="not found"):
        ckpt.load_checkpoint(tmp_path / "none.pt")


def test_candidates_newest_first_and_pruning(tmp_path):
    for step in (5, 10, 15):
        ckpt.atomic_save({}, tmp_path / "checkpoints" / f"step_{step:08d}.pt")
    ckpt.atomic_save({}, tmp_path / "checkpoints" / "last.pt")
    assert [p.name for p in ckpt.checkpoint_candidates(tmp_path)] == [
        "last.pt",
        "step_00000015.pt",
        "step_00000010.pt",
        "step_00000005.pt",
    ]
    ckpt.prune_periodic(tmp_path, keep=2)
    assert [p.name for p in ckpt.checkpoint_candidates(tmp_path)] == ["last.pt", "step_00000015.pt", "step_00000010.pt"]


def test_an_unreadable_checkpoint_says_permission_denied(tmp_path, deny_reading, monkeypatch):
    good = ckpt.atomic_save({"v": torch.ones(3)}, tmp_path / "locked.pt")
    deny_reading(good)
    with pytest.raises(ckpt.CheckpointError, match="locked.pt: cannot read the checkpoint: Permission denied"):
        ckpt.load_checkpoint(good)
    monkeypatch.undo()
    if os.geteuid() != 0:  # the real thing, where permissions apply
        good.chmod(0)
        try:
            with pytest.raises(ckpt.CheckpointError, match="cannot read the checkpoint: Permission denied"):
                ckpt.load_checkpoint(good)
        finally:
            good.chmod(0o644)


def test_encoder_safetensors_beside_encoder_pt_holds_the_same_weights_and_the_card(tensor_recipe, tmp_path):
    """A run writes encoder.safetensors (no pickle at all) next to encoder.pt: same tensors, the card as JSON in the
    header; eval reads it (also as a run directory's last resort) and embeds exactly as from encoder.pt."""
    from safetensors import safe_open

    from ssl_toolkit.eval.checkpoints import resolve_checkpoint
    from ssl_toolkit.eval.models import make_models
    from ssl_toolkit.eval.schema import ModelSpec
    from ssl_toolkit.recipe import load_recipe
    from ssl_toolkit.training.trainer import Trainer

    run = Trainer(
        load_recipe(tensor_recipe, ["trainer.max_steps=2", "trainer.tensorboard=false", "trainer.progress=false"]),
        out_dir=tmp_path / "run",
        quiet=True,
    ).fit()
    weights, card = ckpt.encoder_file_contents(torch.load(run / "encoder.pt", weights_only=True))
    st_weights, st_card = ckpt.load_encoder_safetensors(run / "encoder.safetensors")
    assert set(st_weights) == set(weights) and all(torch.equal(st_weights[k], weights[k]) for k in weights)
    assert st_card == card and st_card["encoder"]["name"] == "mlp_encoder"
    with safe_open(str(run / "encoder.safetensors"), framework="pt") as f:
        assert f.metadata()["format"] == ckpt.ENCODER_FORMAT
    x = torch.randn(5, 16)
    outs = []
    for spec in (run / "encoder.pt", run / "encoder.safetensors"):
        model, _ = make_models(resolve_checkpoint(str(spec)), ModelSpec(), want_random=False)
        outs.append(model.encoder(x))
    assert torch.equal(outs[0], outs[1])
    shutil.rmtree(run / "checkpoints")  # a run dir with only encoder.safetensors left
    (run / "encoder.pt").unlink()
    assert resolve_checkpoint(str(run)).path.name == "encoder.safetensors"


def test_foreign_or_broken_safetensors(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.ones(2, 3)}, str(tmp_path / "plain.safetensors"))
    weights, card = ckpt.load_encoder_safetensors(tmp_path / "plain.safetensors")
    assert card is None and torch.equal(weights["w"], torch.ones(2, 3))
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ckpt.CheckpointError, match="bad.safetensors: not a readable safetensors file"):
        ckpt.load_encoder_safetensors(tmp_path / "bad.safetensors")
    with pytest.raises(ckpt.CheckpointError, match="checkpoint not found"):
        ckpt.load_encoder_safetensors(tmp_path / "none.safetensors")
