"""The Python entry points (ssl_toolkit.load_encoder / train / evaluate / export): a light import, typed errors
(never SystemExit), one Encoder whatever file of a run is named, and the CLI as a thin layer over them."""

import builtins
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ssl_toolkit as sslt
from ssl_toolkit.cli import main

ROOT = Path(__file__).resolve().parents[1]
FAST = ["trainer.tensorboard=false", "trainer.progress=false", "trainer.log_every=1", "trainer.hooks=[]"]
TINY_AUDIO = [
    "model.encoder.feature_d=64",
    "model.projector.hidden_dim=32",
    "model.predictor.hidden_dim=32",
    "data.batch_size=16",
    "views.branches.0.0.n_memory=16",
    "views.branches.1.0.n_memory=16",
]


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory):
    """A finished 2-step BYOL-A run on the shipped FSDD clips (a tiny encoder)."""
    out = tmp_path_factory.mktemp("api") / "run"
    run = sslt.train(
        ROOT / "recipes" / "audio" / "byola_fsdd.yaml", [*FAST, *TINY_AUDIO, "trainer.max_steps=2"], out=out, quiet=True
    )
    assert run == out and (run / "encoder.pt").is_file()
    return run


def test_import_and_help_load_no_torch():
    code = (
        "import sys, ssl_toolkit\n"
        "assert 'torch' not in sys.modules, 'import ssl_toolkit'\n"
        "from ssl_toolkit.cli import main\n"
        "for argv in ([], ['train'], ['eval'], ['embed'], ['export'], ['recipe'], ['list'], ['shard'], ['plot']):\n"
        "    try:\n"
        "        main([*argv, '--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "    assert 'torch' not in sys.modules, argv\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_public_names_resolve():
    for name in sslt.__all__:
        assert getattr(sslt, name) is not None
    assert callable(sslt.load_encoder) and issubclass(sslt.RecipeError, ValueError)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sslt.nope  # noqa: B018


def test_every_file_of_a_run_loads_the_same_encoder(audio_run):
    """Run dir, checkpoint, encoder.pt and encoder.safetensors: the same weights, card and statistics."""
    waves = [np.sin(np.linspace(0, 300, n)).astype(np.float32) * 0.3 for n in (4000, 15200, 40000)]
    ref = sslt.load_encoder(audio_run)
    assert ref.source["kind"] == "checkpoint" and ref.prenorm is not None and ref.unit_sec == 0.95
    assert ref.recipe["name"] == "byola_fsdd"  # the training recipe the weights carry
    want = ref.embed(waves)
    for spec in ("checkpoints/last.pt", "encoder.pt", "encoder.safetensors"):
        enc = sslt.load_encoder(audio_run / spec)
        assert enc.prenorm == ref.prenorm, spec  # safetensors headers keep the pre_norm statistics
        assert enc.encoder_spec == ref.encoder_spec and enc.unit_sec == ref.unit_sec, spec
        np.testing.assert_array_equal(enc.embed(waves), want, err_msg=spec)


def test_legacy_safetensors_card_strings_are_read(audio_run, tmp_path):
    """0.1.0 wrote scalar states into the safetensors header as 'tensor(-6.)': they are read back as numbers."""
    import json as _json

    from safetensors.torch import load_file, save_file

    from ssl_toolkit.checkpoint import load_encoder_safetensors

    state, card = load_encoder_safetensors(audio_run / "encoder.safetensors")
    card["frontend_state"][1] = {"mean": "tensor(-6.)", "std": "tensor(4.5000)"}
    save_file(
        load_file(audio_run / "encoder.safetensors"),
        tmp_path / "old.safetensors",
        metadata={"format": "ssl_toolkit.encoder/1", "card": _json.dumps(card)},
    )
    assert sslt.load_encoder(tmp_path / "old.safetensors").prenorm == {"mean": -6.0, "std": 4.5}


def test_train_and_evaluate_return_the_run_dir_and_the_results(audio_run, tmp_path):
    results = sslt.evaluate(
        ROOT / "recipes" / "eval" / "fsdd_demo.yaml",
        audio_run,
        ["linear.runs=1", "linear.epochs=5", "plots.enabled=false", f"cache_dir={tmp_path / 'cache'}"],
        out=tmp_path / "eval",
        quiet=True,
    )
    assert results == json.loads((tmp_path / "eval" / "results.json").read_text())
    assert set(results["tasks"]) and set(results["baselines"]) == {"random", "logmel"}


@pytest.mark.parametrize(
    "call, error, words",
    [
        (
            lambda r: sslt.train(ROOT / "recipes/audio/byola_fsdd.yaml", ["trainer.max_stepz=2"]),
            "RecipeError",
            "trainer.max_stepz",
        ),
        (lambda r: sslt.train(ROOT / "recipes/nope.yaml"), "RecipeError", "nope.yaml"),
        (
            lambda r: sslt.train(ROOT / "recipes/audio/byola_fsdd.yaml", resume="auto"),
            "TrainingError",
            "--resume auto needs the run directory",
        ),
        (
            lambda r: sslt.evaluate(ROOT / "recipes/eval/fsdd_demo.yaml", r / "nope"),
            "EvalError",
            "no such file or directory",
        ),
        (lambda r: sslt.evaluate(ROOT / "recipes/eval/cifar10.yaml", r), "EvalError", "takes audio input"),
        (lambda r: sslt.load_encoder(r / "nope.pt"), "EvalError", r"^load_encoder: .*nope.pt: no such file"),
        (lambda r: sslt.load_encoder(r / "recipe.yaml"), "EvalError", r"^load_encoder: .*recipe.yaml: a recipe, not"),
        (lambda r: sslt.load_encoder("random"), "EvalError", "'random' needs an encoder"),
        (lambda r: sslt.load_encoder(r, device="gpu7"), "EvalError", "'gpu7' is not a device"),
        (lambda r: sslt.load_encoder(3), "TypeError", "checkpoint must be a path"),
        (lambda r: sslt.load_encoder(r, trainable="no"), "TypeError", "trainable must be True or False, got 'no'"),
        (lambda r: sslt.load_encoder("random", encoder={"name": "mlp_encoder"}, seed=-1), "ValueError", "seed must be"),
        (lambda r: sslt.export(3, r / "x"), "TypeError", "export: run must be a path, got int"),
        (lambda r: sslt.export(r, r.parent / "x", checkpoint=r / "recipe.yaml"), "ExportError", "recipe.yaml"),
        (lambda r: sslt.load_encoder(r, frontend=["log_mel"]), "TypeError", "frontend must be a list of op specs"),
        (lambda r: sslt.load_encoder(r, frontend={"name": "log_mel"}), "TypeError", "frontend must be a list of op"),
        (
            lambda r: sslt.load_encoder(r, encoder={"feature_d": 999}),
            "EvalError",
            r"carry their architecture, and encoder feature_d=999 \(the weights': \d+\).*drop them",
        ),
        (
            lambda r: sslt.load_encoder(r, frontend=[{"name": "log_mel", "n_mels": 7}]),
            "EvalError",
            r"frontend \[\'log_mel\'\] \(the weights': \[.*\]\)",
        ),
        (
            lambda r: sslt.evaluate(ROOT / "recipes/eval/fsdd_demo.yaml", None),
            "TypeError",
            "checkpoint: expected a path",
        ),
        (
            lambda r: sslt.train(ROOT / "recipes/audio/byola_fsdd.yaml", "trainer.max_steps=1"),
            "TypeError",
            "train: overrides must be a list of 'key=value' strings",
        ),
    ],
)
def test_python_entry_points_raise_typed_errors_not_systemexit(audio_run, call, error, words):
    expected = getattr(sslt, error, None) or getattr(builtins, error)
    with pytest.raises(expected, match=words) as info:
        call(audio_run)
    assert "\n" not in str(info.value).strip() or error == "RecipeError"


def test_specs_that_agree_with_the_weights_card_are_accepted(audio_run):
    card = sslt.load_encoder(audio_run).card
    enc = sslt.load_encoder(audio_run, encoder=dict(card.encoder), frontend=[dict(op) for op in card.frontend])
    assert enc.feature_dim == sslt.load_encoder(audio_run).feature_dim
    log_mel = next(op for op in card.frontend if op["name"] == "log_mel")
    n_mels = log_mel.get("n_mels", 64)  # the card leaves out what the recipe left at its default
    same = [dict(op, n_mels=n_mels) if op["name"] == "log_mel" else dict(op) for op in card.frontend]
    sslt.load_encoder(audio_run, frontend=same)
    with pytest.raises(sslt.EvalError, match=f"frontend n_mels={n_mels + 1} "):
        sslt.load_encoder(
            audio_run, frontend=[dict(op, n_mels=n_mels + 1) if op["name"] == "log_mel" else op for op in same]
        )


def test_random_encoder_with_a_spec_is_seeded():
    spec = {"name": "audiontt2020", "n_mels": 64, "feature_d": 32}
    a, b = sslt.load_encoder("random", encoder=spec), sslt.load_encoder("random", encoder=spec)
    c = sslt.load_encoder("random", encoder=spec, seed=1)
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 16000)).astype(np.float32)
    a.fit_prenorm(list(x)), b.fit_prenorm(list(x)), c.fit_prenorm(list(x))
    assert np.array_equal(a.embed(list(x)), b.embed(list(x))) and not np.allclose(a.embed(list(x)), c.embed(list(x)))


def test_cli_commands_are_the_python_functions(audio_run, tmp_path, capsys):
    assert main(["export", str(audio_run), str(tmp_path / "x")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "x")
    assert main(["export", str(audio_run), str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: export: OUT") and "--overwrite" in err and err.count("\n") == 1
    assert main(["train", str(ROOT / "recipes/audio/byola_fsdd.yaml"), "trainer.max_stepz=2"]) == 2
