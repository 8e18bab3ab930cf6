"""pre_norm statistics: computed once over training log-mels, cached beside the data or in the run dir."""

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from ssl_toolkit.audio import compute_stats
from ssl_toolkit.audio import stats as S
from ssl_toolkit.audio.augment import LogMel, PreNorm
from ssl_toolkit.audio.dataset import AudioFolder
from ssl_toolkit.data import collate_skipping_bad
from ssl_toolkit.views import ViewMaker

ROOT = Path(__file__).resolve().parents[2]
SR = 16000


@pytest.fixture
def tiny_set(tmp_path, write_wav):
    rng = np.random.default_rng(0)
    for k in range(6):
        write_wav(tmp_path / "data" / f"{k}.wav", rng.normal(0, 0.1 * (k + 1), int(0.5 * SR)), SR)
    return AudioFolder(str(tmp_path / "data"), unit_sec=0.5)


def views_cfg():
    return SimpleNamespace(
        input=[{"name": "log_mel"}, {"name": "pre_norm", "n_stats": 5}],
        branches=[[{"name": "random_linear_fader"}]],
        joint=[],
    )


def batches_of(ds, calls=None):
    def batches():
        if calls is not None:
            calls.append(1)
        loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate_skipping_bad)
        for x, _, _ in loader:
            yield x

    return batches


def expected_stats(ds, n):
    lm = LogMel()
    y = lm(torch.stack([ds[i][0] for i in range(n)])).double()
    return float(y.mean()), float(y.std(unbiased=False))


def test_prepare_computes_caches_beside_data_and_reuses(tiny_set, tmp_path):
    vm = ViewMaker.from_config(views_cfg())
    vm.prepare(batches_of(tiny_set), torch.device("cpu"), tmp_path / "run", tiny_set)
    op = vm.input.ops[1]
    mean, std = expected_stats(tiny_set, 5)  # n_stats=5 of 6 items
    assert op.stats["n_items"] == 5 and op.stats["source"] == "computed"
    assert float(op.mean) == pytest.approx(mean, rel=1e-5) and float(op.std) == pytest.approx(std, rel=1e-5)
    path = Path(op.stats["path"])
    assert path.parent == tmp_path / "data" / ".ssl_toolkit" and path.is_file()
    saved = json.loads(path.read_text())
    assert saved["dataset"]["num_files"] == 6 and saved["n_stats"] == 5
    # a second run loads them without touching the data
    calls = []
    vm2 = ViewMaker.from_config(views_cfg())
    vm2.prepare(batches_of(tiny_set, calls), torch.device("cpu"), tmp_path / "run2", tiny_set)
    assert calls == [] and vm2.input.ops[1].stats["source"] == "cache"
    assert float(vm2.input.ops[1].mean) == float(op.mean)
    # other front-end settings -> another key -> computed afresh
    cfg = views_cfg()
    cfg.input[0] = {"name": "log_mel", "frontend": "torchaudio_mel"}
    vm3 = ViewMaker.from_config(cfg)
    vm3.prepare(batches_of(tiny_set, calls), torch.device("cpu"), None, tiny_set)
    assert calls == [1] and Path(vm3.input.ops[1].stats["path"]) != path


def test_falls_back_to_run_dir_when_data_folder_not_writable(tiny_set, tmp_path, monkeypatch):
    real_write = S._write

    def write(path, data):
        if ".ssl_toolkit" in str(path):
            raise PermissionError(13, "Permission denied", str(path))
        real_write(path, data)

    monkeypatch.setattr(S, "_write", write)
    vm = ViewMaker.from_config(views_cfg())
    run = tmp_path / "run"
    vm.prepare(batches_of(tiny_set), torch.device("cpu"), run, tiny_set)
    path = Path(vm.input.ops[1].stats["path"])
    assert path.parent == run and path.is_file()
    calls = []  # a resumed run (same run dir) loads them from there
    vm2 = ViewMaker.from_config(views_cfg())
    vm2.prepare(batches_of(tiny_set, calls), torch.device("cpu"), run, tiny_set)
    assert calls == [] and vm2.input.ops[1].stats["path"] == str(path)


def test_recipe_values_and_explicit_file(tiny_set, tmp_path):
    op = PreNorm(mean=1.0, std=2.0)
    op.prepare(None)  # nothing to do
    assert float(op.mean) == 1.0
    cfg = views_cfg()
    target = tmp_path / "mystats.json"
    cfg.input[1] = {"name": "pre_norm", "stats_file": str(target)}
    vm = ViewMaker.from_config(cfg)
    vm.prepare(batches_of(tiny_set), torch.device("cpu"), None, tiny_set)
    assert target.is_file() and json.loads(target.read_text())["n_items"] == 6


def test_compute_stats_from_recipe_matches_training_preparation(tmp_path, write_wav):
    rng = np.random.default_rng(1)
    for k in range(8):
        write_wav(tmp_path / "data" / f"{k}.wav", rng.normal(0, 0.05 * (k + 1), SR), SR)
    recipe = ROOT / "recipes" / "audio" / "byola_v2.yaml"
    overrides = [f"data.dataset.root={tmp_path / 'data'}", "data.batch_size=4", "data.num_workers=0"]
    out = compute_stats(recipe, overrides, n_stats=6, run_dir=tmp_path / "run")
    assert out["n_items"] == 6 and out["source"] == "computed" and Path(out["path"]).is_file()
    again = compute_stats(recipe, overrides, n_stats=6)
    assert again["source"] == "cache" and again["mean"] == out["mean"] and again["std"] == out["std"]
    forced = compute_stats(recipe, overrides, n_stats=6, force=True)
    assert forced["source"] == "computed" and forced["mean"] == pytest.approx(out["mean"], rel=1e-9)
    with pytest.raises(ValueError, match="no pre_norm"):
        compute_stats(recipe, overrides + ["views.input=[{name: log_mel}]"])
