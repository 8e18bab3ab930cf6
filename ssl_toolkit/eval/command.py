"""CLI wiring: ``ssl-toolkit eval`` and ``ssl-toolkit plot`` (added to the main parser by
``add_eval_parser(subparsers)`` / ``add_plot_parser(subparsers)``; each sets ``func``)."""
from __future__ import annotations

import sys

EVAL_HELP = """Evaluate a checkpoint on downstream tasks (linear evaluation, kNN) beside the random-init and
log-mel baselines. CHECKPOINT: a run directory, a checkpoints/*.pt or encoder.pt file, an official BYOL-A
weight file, or 'random'. Writes OUT/results.json, OUT/results.md and OUT/plots/."""


def _cmd_eval(args) -> int:
    from .errors import EvalError
    from .runner import run_eval
    from .schema import load_eval_recipe

    recipe = load_eval_recipe(args.recipe, args.overrides)
    try:
        run_eval(recipe, args.checkpoint, out_dir=args.out, quiet=args.quiet)
    except EvalError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def _cmd_plot(args) -> int:
    from pathlib import Path

    from .plots import replot_eval, training_curves

    run = Path(args.run_dir)
    made = []
    try:
        if (run / "metrics.csv").is_file() or run.name == "metrics.csv":
            made.append(training_curves(run, args.out))
        if (run / "results.json").is_file():
            made.extend(replot_eval(run))
        if not made:
            print(f"error: {run}: neither a training run (metrics.csv) nor an evaluation folder (results.json)",
                  file=sys.stderr)
            return 1
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for p in made:
        print(p)
    return 0


def add_eval_parser(subparsers) -> None:
    p = subparsers.add_parser("eval", help="evaluate a checkpoint on downstream tasks", description=EVAL_HELP)
    p.add_argument("recipe", help="eval recipe (recipes/eval/*.yaml)")
    p.add_argument("overrides", nargs="*", help="key.sub=value (YAML scalars), e.g. linear.runs=1 tasks.0.unit_sec=2")
    p.add_argument("--checkpoint", "-c", required=True,
                   help="run dir | checkpoints/*.pt | encoder.pt | official BYOL-A weights | random")
    p.add_argument("--out", help="output folder (default runs/eval-<recipe>-<checkpoint>-<timestamp>)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    p.set_defaults(func=_cmd_eval)


def add_plot_parser(subparsers) -> None:
    p = subparsers.add_parser("plot", help="draw training curves (metrics.csv) or re-draw an evaluation's charts")
    p.add_argument("run_dir", help="a training run directory, or an eval output folder")
    p.add_argument("--out", help="PNG path for the training curves (default RUN_DIR/plots/training.png)")
    p.set_defaults(func=_cmd_plot)
