import subprocess
import sys

import yaml

from ssl_toolkit.cli import main


def test_list_shows_every_kind_with_parameters(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for kind in ("encoders", "heads", "augmentations", "datasets", "optimizers", "schedules", "methods"):
        assert f"{kind} (" in out
    assert "lars" in out and "trust_coefficient=0.001" in out and "byol" in out


def test_list_unknown_kind_is_a_clear_error(capsys):
    assert main(["list", "encoder"]) == 2
    assert "did you mean 'encoders'" in capsys.readouterr().err


def test_recipe_prints_resolved_yaml_with_overrides(tensor_recipe, capsys):
    assert main(["recipe", str(tensor_recipe), "trainer.epochs=2", "seed=5"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["trainer"]["epochs"] == 2 and printed["seed"] == 5
    assert printed["ema"]["tau_base"] == 0.99 and printed["trainer"]["max_steps"] is None


def test_bad_override_exits_2_with_one_line(tensor_recipe):
    proc = subprocess.run(
        [sys.executable, "-m", "ssl_toolkit", "train", str(tensor_recipe), "trainer.epohcs=1"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "key 'trainer.epohcs'" in proc.stderr and "did you mean 'epochs'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_inputs_at_every_entry_point_are_one_line_errors(tensor_recipe, tmp_path, capsys):
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    binary = tmp_path / "weights.yaml"
    binary.write_bytes(b"PK\x03\x04\x14\x00\x00\x00\x08\x00\xff\xfe\x00\x01")
    ragged = tmp_path / "meta.csv"
    ragged.write_text("file_name,label,split\na.wav,1,train\nb.wav,2,test,oops\n")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    cases = [
        (["train", binary, "--out", tmp_path / "o1"], 2, "weights.yaml: not a text recipe"),
        (["recipe", binary], 2, "not a text recipe"),
        (["eval", binary, "--checkpoint", "random"], 2, "not a text recipe"),
        (["stats", root / "recipes/image/byol_cifar10_cpu.yaml"], 2, "has no pre_norm op"),
        (["stats", tensor_recipe], 2, "key 'views.input'"),
        (
            [
                "eval",
                root / "recipes/eval/fsdd_demo.yaml",
                "--checkpoint",
                "random",
                "--out",
                tmp_path / "e",
                f"tasks.0.metadata={ragged}",
                "tasks.0.audio_dir=.",
                "--quiet",
            ],
            1,
            "meta.csv line 3: 4 fields, but the header has 3",
        ),
        (["train", tensor_recipe, "--out", tmp_path / "o2", "--resume", garbage], 1, "truncated or corrupt"),
    ]
    for args, rc, words in cases:
        assert main([str(a) for a in args]) == rc, args
        err = capsys.readouterr().err
        assert words in err and err.count("\n") <= 3, (args, err)
