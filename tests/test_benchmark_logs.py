"""benchmarks/jsonl_log.py and harness.train_or_reuse: results files never lose or glue a run, a row that does not
parse is an error naming its line, and a finished run is reused only with the recipe it was trained with."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

from ssl_toolkit.recipe import load_recipe
from ssl_toolkit.recipe.schema import to_plain

ROOT = Path(__file__).resolve().parents[1]


def _module(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


jsonl_log, harness = _module("jsonl_log"), _module("harness")


def test_a_last_line_cut_short_is_not_a_run_and_the_next_append_replaces_it(tmp_path, capsys):
    path = tmp_path / "r.jsonl"
    path.write_text('{"key": "a", "seed": 0}\n{"key": "b", "se')
    assert jsonl_log.read_jsonl(path) == [{"key": "a", "seed": 0}]
    assert "r.jsonl:2: ignored a line cut short" in capsys.readouterr().err
    jsonl_log.append_jsonl(path, [{"key": "b", "seed": 0}, {"key": "c", "seed": 1}])
    assert path.read_text() == '{"key": "a", "seed": 0}\n{"key": "b", "seed": 0}\n{"key": "c", "seed": 1}\n'
    assert "removed a last line cut short" in capsys.readouterr().err


def test_a_whole_last_row_without_its_newline_is_kept(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"key": "a"}\n{"key": "b"}')
    assert [r["key"] for r in jsonl_log.read_jsonl(path)] == ["a", "b"]
    jsonl_log.append_jsonl(path, [{"key": "c"}])
    assert [r["key"] for r in jsonl_log.read_jsonl(path)] == ["a", "b", "c"]


@pytest.mark.parametrize("bad", ['{"key": "b", "se', "[1, 2]", "not json"])
def test_a_bad_line_before_the_last_is_an_error_naming_file_and_line(tmp_path, bad):
    path = tmp_path / "r.jsonl"
    path.write_text(f'{{"key": "a"}}\n{bad}\n{{"key": "c"}}\n')
    with pytest.raises(ValueError, match=r"r\.jsonl:2: "):
        jsonl_log.read_jsonl(path)


def test_reading_a_missing_file_gives_no_rows_and_appending_creates_it(tmp_path):
    path = tmp_path / "new" / "r.jsonl"
    assert jsonl_log.read_jsonl(path) == []
    jsonl_log.append_jsonl(path, [{"x": 1}])
    assert json.loads(path.read_text()) == {"x": 1}


RECIPE = ROOT / "recipes" / "image" / "byol_cifar10_cpu.yaml"


def _finished_run(run_dir: Path, overrides: list[str]) -> None:
    """A run folder as the trainer leaves it: its recipe.yaml and an encoder."""
    run_dir.mkdir()
    recipe = load_recipe(RECIPE, overrides)
    (run_dir / "recipe.yaml").write_text(yaml.safe_dump(to_plain(recipe.to_dict()), sort_keys=False))
    (run_dir / "encoder.pt").write_bytes(b"")


class _NoTraining:
    def __init__(self, *args, **kwargs):
        raise AssertionError("a finished run with this recipe must be reused, not trained")


def test_a_finished_run_is_reused_with_its_own_recipe_up_to_logging_and_device(tmp_path, monkeypatch):
    import ssl_toolkit.training.trainer as trainer

    monkeypatch.setattr(trainer, "Trainer", _NoTraining)
    _finished_run(tmp_path / "run", ["seed=1", "trainer.progress=true"])
    harness.train_or_reuse(load_recipe(RECIPE, ["seed=1", "trainer.progress=false", "device=cpu"]), tmp_path / "run")


@pytest.mark.parametrize(
    "now, named",
    [
        (["seed=2"], "seed: 1"),
        (["seed=1", "trainer.epochs=3"], "trainer.epochs"),  # a resume may change it; a finished encoder differs
        (["seed=1", "ema.tau_base=0.9"], "ema.tau_base"),
    ],
)
def test_a_finished_run_of_another_recipe_is_refused_naming_the_keys(tmp_path, monkeypatch, now, named):
    import ssl_toolkit.training.trainer as trainer

    monkeypatch.setattr(trainer, "Trainer", _NoTraining)
    _finished_run(tmp_path / "run", ["seed=1"])
    with pytest.raises(SystemExit, match=rf"holds an encoder trained with another recipe:\n(.|\n)*{named}"):
        harness.train_or_reuse(load_recipe(RECIPE, now), tmp_path / "run")


def _append_one(path: str, go) -> None:
    go.wait(30)
    jsonl_log.append_jsonl(path, [{"key": "b"}])


def test_an_append_waits_for_the_lock_another_process_holds(tmp_path):
    """Shards append to one file: an append takes the file's lock, so it waits while another process holds it."""
    import fcntl
    import multiprocessing as mp
    import time

    path = tmp_path / "r.jsonl"
    path.write_text('{"key": "a"}\n')
    ctx = mp.get_context("fork")
    go = ctx.Event()
    child = ctx.Process(target=_append_one, args=(str(path), go))
    child.start()  # before the lock is taken: a forked child would inherit the locked file
    with open(path, "r+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        go.set()
        time.sleep(1.0)
        assert child.is_alive() and path.read_text() == '{"key": "a"}\n'  # waiting, nothing written
    child.join(timeout=30)  # closing the file released the lock
    assert child.exitcode == 0 and [r["key"] for r in jsonl_log.read_jsonl(path)] == ["a", "b"]
