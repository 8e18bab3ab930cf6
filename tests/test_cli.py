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
    proc = subprocess.run([sys.executable, "-m", "ssl_toolkit", "train", str(tensor_recipe), "trainer.epohcs=1"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "key 'trainer.epohcs'" in proc.stderr and "did you mean 'epochs'" in proc.stderr
    assert "Traceback" not in proc.stderr
