"""The eval / plot sub-commands as the CLI wires them (add_eval_parser / add_plot_parser)."""

import argparse
import csv
import json

import yaml
from evalhelpers import audio_recipe

from ssl_toolkit.eval.command import add_eval_parser, add_plot_parser


def parser():
    p = argparse.ArgumentParser(prog="ssl-toolkit")
    sub = p.add_subparsers(dest="command", required=True)
    add_eval_parser(sub)
    add_plot_parser(sub)
    return p


def test_eval_command(tone_csv, tmp_path, capsys):
    tree = audio_recipe(tone_csv, tmp_path)
    tree["baselines"] = ["logmel"]
    recipe = tmp_path / "e.yaml"
    recipe.write_text(yaml.safe_dump(tree))
    args = parser().parse_args(
        ["eval", str(recipe), "linear.runs=1", "--checkpoint", "random", "--out", str(tmp_path / "out"), "--quiet"]
    )
    assert args.func(args) == 0
    res = json.loads((tmp_path / "out" / "results.json").read_text())
    assert len(res["tasks"]["tones"]["runs"]) == 1 and "logmel" in res["baselines"]
    # a clear error, exit status 1, for a checkpoint that is not there
    from ssl_toolkit.cli import main

    assert main(["eval", str(recipe), "--checkpoint", str(tmp_path / "nope"), "--quiet"]) == 1
    assert "no such file or directory" in capsys.readouterr().err
    # plot re-draws the bar charts of an eval folder
    args = parser().parse_args(["plot", str(tmp_path / "out")])
    assert args.func(args) == 0
    assert (tmp_path / "out" / "plots" / "tones_bars.png").exists()


def test_plot_training_curves(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    cols = ["step", "epoch", "loss", "lr", "tau", "samples_per_s", "collapse", "skipped_files", "elapsed_s"]
    with open(run / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for s in range(10, 410, 10):
            w.writerow(
                [s, s // 100, 4 / (1 + s / 100), 0.1 * min(1, s / 50), 0.99 + 0.01 * s / 400, 300, 0.9, 0, s / 10]
            )
    args = parser().parse_args(["plot", str(run)])
    assert args.func(args) == 0
    png = run / "plots" / "training.png"
    assert png.stat().st_size > 5000 and str(png) in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    args = parser().parse_args(["plot", str(tmp_path / "empty")])
    assert args.func(args) == 1
    assert "neither a training run" in capsys.readouterr().err
