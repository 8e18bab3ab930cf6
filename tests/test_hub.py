"""``ssl-toolkit export``: the folder's files and model card, the round trip through load_encoder and torch.hub
(identical outputs to the run directory), the refusals, and an atomic write."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import ssl_toolkit as sslt
import ssl_toolkit.hub as hub
from ssl_toolkit.checkpoint import sha256_file
from ssl_toolkit.cli import main

ROOT = Path(__file__).resolve().parents[1]
FAST = [
    "trainer.tensorboard=false",
    "trainer.progress=false",
    "trainer.log_every=1",
    "trainer.hooks=[]",
    "trainer.max_steps=2",
    "model.encoder.feature_d=64",
    "model.projector.hidden_dim=32",
    "model.predictor.hidden_dim=32",
    "data.batch_size=16",
    "views.branches.0.0.n_memory=16",
    "views.branches.1.0.n_memory=16",
]
WAVES = [np.sin(np.linspace(0, 500, n)).astype(np.float32) * 0.4 for n in (3000, 15200, 50000)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished 2-step BYOL-A run on the shipped FSDD clips, and its eval results (fsdd_demo, 1 linear run)."""
    base = tmp_path_factory.mktemp("hub")
    run = sslt.train(ROOT / "recipes" / "audio" / "byola_fsdd.yaml", FAST, out=base / "run", quiet=True)
    sslt.evaluate(
        ROOT / "recipes" / "eval" / "fsdd_demo.yaml",
        run,
        ["linear.runs=1", "linear.epochs=5", "plots.enabled=false", f"cache_dir={base / 'cache'}"],
        out=run / "eval",
        quiet=True,
    )
    return run


def front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def test_export_writes_the_hub_layout_and_a_model_card(run, tmp_path):
    out = sslt.export(run, tmp_path / "fsdd-byola", results=run / "eval" / "results.json", license="mit")
    assert sorted(p.name for p in out.iterdir()) == sorted(hub.FILES)
    config = json.loads((out / "config.json").read_text())
    assert config["library_name"] == "ssl_toolkit" and config["modality"] == "audio"
    assert config["feature_dim"] == 64 and config["sample_rate"] == 16000 and config["architecture"] == "audiontt2020"
    assert config["card"]["frontend_state"][1]["mean"] == pytest.approx(sslt.load_encoder(run).prenorm["mean"])
    assert config["training"]["steps"] == 2 and config["training"]["data_items"] == 200
    assert config["weights_sha256"] == sha256_file(out / "model.safetensors")
    recipe_text = (out / "recipe.yaml").read_text()
    assert yaml.safe_load(recipe_text)["name"] == "byola_fsdd"
    card = (out / "README.md").read_text()
    meta = front_matter(card)
    assert meta["library_name"] == "ssl_toolkit" and meta["license"] == "mit"
    assert meta["pipeline_tag"] == "feature-extraction" and "byol" in meta["tags"] and meta["datasets"] == ["fsdd_mini"]
    results = json.loads((run / "eval" / "results.json").read_text())
    (index,) = meta["model-index"]
    (entry,) = index["results"]
    assert index["name"] == "fsdd-byola" and entry["task"]["type"] == "audio-classification"
    assert entry["metrics"][0]["value"] == round(100 * results["tasks"]["fsdd_mini_digits"]["mean"], 2)
    for words in (
        "sslt.load_encoder(",
        "torch.hub.load(",
        "| data | fsdd_mini (200 items) |",
        "| steps | 2 ",
        config["recipe_sha256"],
        config["weights_sha256"],
        "random init",
        "log-mel (no learning)",
    ):
        assert words in card, words


def test_export_round_trip_and_torch_hub_give_the_run_s_outputs(run, tmp_path):
    out = sslt.export(run, tmp_path / "e")
    want = sslt.load_encoder(run).embed(WAVES)
    np.testing.assert_array_equal(sslt.load_encoder(out).embed(WAVES), want)
    via_hub = torch.hub.load(str(ROOT), "encoder", source="local", path=str(out))
    assert isinstance(via_hub, sslt.Encoder)
    np.testing.assert_array_equal(via_hub.embed(WAVES), want)
    x = torch.from_numpy(WAVES[1])[None]
    with torch.no_grad():
        assert torch.equal(via_hub(x), sslt.load_encoder(run)(x))
    meta = front_matter((out / "README.md").read_text())
    assert "license" not in meta and "model-index" not in meta  # not given: not invented
    assert sslt.load_encoder(out).source["path"] == str(out / "model.safetensors")


def test_export_of_a_checkpoint_and_the_refusals(run, tmp_path, capsys):
    unfinished = tmp_path / "unfinished"
    (unfinished / "checkpoints").mkdir(parents=True)
    (unfinished / "checkpoints" / "last.pt").write_bytes((run / "checkpoints" / "last.pt").read_bytes())
    (unfinished / "recipe.yaml").write_text((run / "recipe.yaml").read_text())
    with pytest.raises(sslt.ExportError, match="has no finished encoder .*--checkpoint .*last.pt"):
        sslt.export(unfinished, tmp_path / "a")
    out = sslt.export(unfinished, tmp_path / "a", checkpoint=unfinished / "checkpoints" / "last.pt")
    assert json.loads((out / "config.json").read_text())["training"]["checkpoint"] == "last.pt"
    np.testing.assert_array_equal(sslt.load_encoder(out).embed(WAVES), sslt.load_encoder(run).embed(WAVES))
    for call, words in [
        (lambda: sslt.export(run, out), "OUT .* already exists; choose a new folder or pass --overwrite"),
        (lambda: sslt.export(tmp_path / "nothing", tmp_path / "b"), "RUN .*nothing: no such folder"),
        (lambda: sslt.export(run, tmp_path / "b", results=run / "recipe.yaml"), "--results .*: not JSON"),
        (lambda: sslt.export(run, tmp_path / "b", results=out / "config.json"), "not an ssl-toolkit eval results"),
        (lambda: sslt.export(run, tmp_path / "b", checkpoint=run / "nope.pt"), "--checkpoint .*nope.pt: no such"),
        (lambda: sslt.export(run, tmp_path / "b", license="  "), "--license"),
    ]:
        with pytest.raises(sslt.ExportError, match=words):
            call()
    assert not (tmp_path / "b").exists()
    assert main(["export", str(tmp_path / "nothing"), str(tmp_path / "b")]) == 1
    assert capsys.readouterr().err.startswith("error: export: RUN")


def test_a_failed_export_leaves_nothing_and_a_failed_overwrite_keeps_the_old_one(run, tmp_path, monkeypatch):
    import ssl_toolkit.model_card as model_card

    def broken(*args, **kwargs):
        raise OSError("disk full")

    good = sslt.export(run, tmp_path / "e")
    before = {p.name: p.read_bytes() for p in good.iterdir()}
    monkeypatch.setattr(model_card, "render_model_card", broken)
    with pytest.raises(sslt.ExportError, match=r"failed \(disk full\); nothing was changed"):
        sslt.export(run, tmp_path / "new")
    with pytest.raises(sslt.ExportError, match=r"failed \(disk full\); nothing was changed"):
        sslt.export(run, good, overwrite=True)
    assert not (tmp_path / "new").exists()
    assert {p.name: p.read_bytes() for p in good.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e"]  # no temporary folder left behind
    monkeypatch.undo()
    assert sslt.export(run, good, overwrite=True, license="apache-2.0") == good
    assert front_matter((good / "README.md").read_text())["license"] == "apache-2.0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e"]


def test_an_export_never_replaces_the_run_it_reads(run, tmp_path):
    for out in (run, run.parent):
        with pytest.raises(sslt.ExportError, match="is the run directory .* or holds it"):
            sslt.export(run, out, overwrite=True)
    assert (run / "encoder.pt").is_file() and (run / "checkpoints" / "last.pt").is_file()


def test_overwrite_replaces_only_an_earlier_export_or_an_empty_folder(run, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    (tmp_path / "notes.txt").write_text("a file")
    other_json = tmp_path / "other"
    other_json.mkdir()
    (other_json / "config.json").write_text('{"format": "someone-else/1"}')
    for out in (mine, tmp_path / "notes.txt", other_json):
        with pytest.raises(sslt.ExportError, match="is neither an empty folder nor an earlier export .* only those"):
            sslt.export(run, out, overwrite=True)
    assert (mine / "thesis.txt").read_text() == "years of work" and (tmp_path / "notes.txt").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert (sslt.export(run, empty, overwrite=True) / "model.safetensors").is_file()
    assert (sslt.export(run, empty, overwrite=True) / "config.json").is_file()  # an earlier export: replaced
    (empty / ".git").mkdir()  # an export someone cloned or added to: not only the export's files any more
    with pytest.raises(sslt.ExportError, match="earlier export holding only its files"):
        sslt.export(run, empty, overwrite=True)
    assert (empty / ".git").is_dir()
