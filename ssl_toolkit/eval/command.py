"""CLI wiring: ``ssl-toolkit eval``, ``embed`` and ``plot`` (added to the main parser by
``add_eval_parser(subparsers)`` / ``add_embed_parser`` / ``add_plot_parser``; each sets ``func``)."""

from __future__ import annotations

import sys

CHECKPOINT_HELP = "run dir | checkpoints/*.pt | encoder.pt / .safetensors | exported folder | official weights | random"
EVAL_HELP = """Evaluate a checkpoint on downstream tasks (linear evaluation, kNN, fine-tuning) beside the random-init
and log-mel baselines. CHECKPOINT: a run directory, a checkpoints/*.pt, encoder.pt or encoder.safetensors file, an
exported folder, an official BYOL-A weight file, or 'random'. Writes OUT/results.json, OUT/results.md and OUT/plots/."""


def _cmd_eval(args) -> int:
    from ..api import evaluate

    evaluate(args.recipe, args.checkpoint, args.overrides, out=args.out, quiet=args.quiet)
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
            print(
                f"error: {run}: neither a training run (metrics.csv) nor an evaluation folder (results.json)",
                file=sys.stderr,
            )
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
    p.add_argument(
        "--checkpoint",
        "-c",
        required=True,
        help=CHECKPOINT_HELP,
    )
    p.add_argument("--out", help="output folder (default runs/eval-<recipe>-<checkpoint>-<timestamp>)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    p.set_defaults(func=_cmd_eval)


EMBED_HELP = """Embeddings of your own files: OUT/embeddings.npz (embeddings float32 N x D, files N; with --frames
also frames, timestamps in ms and frame_offsets), OUT/manifest.json (checkpoint sha256, encoder, front end,
settings, command) and OUT/skipped.csv. CHECKPOINT: what eval --checkpoint accepts. INPUT: a folder (searched
recursively for audio or image files, by the encoder's modality) or an EVAR-style metadata CSV (file_name)."""


def _yaml_option(text: str, option: str, kind: type):
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"{option}: not YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(value, kind) or (isinstance(value, list) and not all(isinstance(op, dict) for op in value)):
        raise ValueError(
            f"{option}: expected a YAML {'list of op mappings' if kind is list else kind.__name__}, e.g. "
            + ("'{name: audiontt2020, feature_d: 2048}'" if kind is dict else "'[{name: to_float}]'")
        )
    return value


def _cmd_embed(args) -> int:
    from ..embed import EmbedSettings, run_embed

    settings = EmbedSettings(
        frames=args.frames,
        unit_sec=args.unit_sec,
        long_clips=args.long_clips,
        image_size=args.image_size,
        batch_size=args.batch_size,
        chunk=args.chunk,
        precision=args.precision,
        device=args.device,
        on_bad_file=args.on_bad_file,
        progress=not args.quiet,
    )
    try:
        encoder = _yaml_option(args.encoder, "--encoder", dict) if args.encoder else None
        frontend = _yaml_option(args.frontend, "--frontend", list) if args.frontend else None
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        manifest = run_embed(
            args.checkpoint, args.input, args.out, settings, encoder, frontend, args.overwrite, root=args.root
        )
    except ValueError as e:  # audio the embedding refuses (check_waveforms), named by file
        print(f"error: {e}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(
            f"{manifest['n_files']} files → {args.out}/embeddings.npz ({manifest['feature_dim']}-d, "
            f"{manifest['files_per_second']} files/s; {manifest['n_skipped']} skipped)"
        )
    return 0


def _positive(kind):
    def parse(text):
        value = kind(text)
        if not value > 0:
            raise ValueError(text)
        return value

    parse.__name__ = f"positive {kind.__name__}"
    return parse


def add_embed_parser(subparsers) -> None:
    p = subparsers.add_parser("embed", help="embeddings of your own audio or image files", description=EMBED_HELP)
    p.add_argument("checkpoint", help=CHECKPOINT_HELP)
    p.add_argument("input", help="a folder of audio or image files, or an EVAR-style metadata CSV")
    p.add_argument("--out", required=True, help="output folder (new, or give --overwrite)")
    p.add_argument("--root", help="CSV input: where file_name resolves (relative to the CSV's folder; default: it)")
    p.add_argument("--frames", action="store_true", help="audio: also timestamp embeddings (HEAR convention)")
    p.add_argument(
        "--unit-sec",
        type=_positive(float),
        default=None,
        help="audio piece length (s); longer files are cut and the pieces averaged, as eval does "
        "(default: the training recipe's unit_sec, else 1.0)",
    )
    p.add_argument("--long-clips", choices=("chunks", "crop", "whole"), default="chunks")
    p.add_argument(
        "--image-size",
        type=_positive(int),
        default=None,
        help="images: resize the shorter side and centre-crop (default: each image at its own size)",
    )
    p.add_argument("--batch-size", type=_positive(int), default=64)
    p.add_argument("--chunk", type=_positive(int), default=256, help="files decoded at a time (bounds memory)")
    p.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    p.add_argument("--on-bad-file", choices=("skip", "fail"), default="skip")
    p.add_argument("--encoder", help="YAML mapping: the encoder of 'random' or of weights without a recipe")
    p.add_argument("--frontend", help="YAML list: the front-end ops (default: the checkpoint's)")
    p.add_argument("--overwrite", action="store_true", help="replace the embeddings already in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    p.set_defaults(func=_cmd_embed)


EXPORT_HELP = """Write OUT, a folder in the layout the model hubs use, from a finished run: config.json (library_name
ssl_toolkit, encoder, front end, feature_dim, modality, the weights card), model.safetensors (the encoder weights,
the card in its header), README.md (a model card: how to load it, what it was trained on, the eval results) and
recipe.yaml. Nothing is uploaded: `huggingface-cli upload` or git lfs is your step. Load it with
ssl_toolkit.load_encoder(OUT) or torch.hub.load(REPO, "encoder", source="local", path=OUT)."""


def _cmd_export(args) -> int:
    from ..api import export

    out = export(
        args.run,
        args.out,
        checkpoint=args.checkpoint,
        results=args.results,
        license=args.license,
        overwrite=args.overwrite,
    )
    print(out)
    return 0


def add_export_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "export", help="a shareable folder (model card, safetensors) from a run", description=EXPORT_HELP
    )
    p.add_argument("run", help="a training run directory (with its finished encoder.pt / encoder.safetensors)")
    p.add_argument("out", help="the folder to write (must not exist, unless --overwrite)")
    p.add_argument("--checkpoint", help="export this checkpoints/*.pt instead of the run's finished encoder")
    p.add_argument("--results", help="an eval results.json: its scores go into the model card (model-index)")
    p.add_argument("--license", help="the license id for the card's front matter (e.g. mit, apache-2.0, cc-by-4.0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")
    p.set_defaults(func=_cmd_export)


def add_plot_parser(subparsers) -> None:
    p = subparsers.add_parser("plot", help="draw training curves (metrics.csv) or re-draw an evaluation's charts")
    p.add_argument("run_dir", help="a training run directory, or an eval output folder")
    p.add_argument("--out", help="PNG path for the training curves (default RUN_DIR/plots/training.png)")
    p.set_defaults(func=_cmd_plot)
