"""The ``ssl-toolkit`` command: train | recipe | stats | list | eval | embed | export | plot | shard.

A thin layer over the Python entry points (:mod:`ssl_toolkit.api`): argument parsing, exit codes and one-line
messages. Each command imports what it needs when it runs, so ``--help`` answers without loading torch.
"""

from __future__ import annotations

import argparse
import sys

from .eval.command import add_embed_parser, add_eval_parser, add_export_parser, add_plot_parser
from .registry import ALL_REGISTRIES, RegistryError
from .shard_command import add_shard_parser


def _cmd_train(args) -> int:
    from .api import train

    train(
        args.recipe,
        args.overrides,
        out=args.out,
        resume=args.resume,
        quiet=args.quiet,
        overwrite=args.overwrite,
        allow_recipe_change=args.allow_recipe_change,
    )
    return 0


def _cmd_recipe(args) -> int:
    import yaml

    from .recipe import load_recipe, to_plain

    recipe = load_recipe(args.recipe, args.overrides, check_files=False)  # shows the recipe; trains nothing
    sys.stdout.write(yaml.safe_dump(to_plain(recipe.to_dict()), sort_keys=False))
    return 0


def _cmd_stats(args) -> int:
    from .audio.recipe_stats import compute_stats

    stats = compute_stats(args.recipe, args.overrides, n_stats=args.n, device=args.device, force=args.force)
    where = stats["path"] or "not stored (no writable location)"
    print(f"mean {stats['mean']:.6f}  std {stats['std']:.6f}  ({stats['source']}; {where})")
    return 0


def _cmd_list(args) -> int:
    from .recipe import import_components

    import_components()
    kinds = [args.kind] if args.kind else list(ALL_REGISTRIES)
    for kind in kinds:
        if kind not in ALL_REGISTRIES:
            from .registry import did_you_mean

            raise RegistryError(
                f"unknown kind '{kind}'{did_you_mean(kind, ALL_REGISTRIES)}; known: {', '.join(ALL_REGISTRIES)}"
            )
        registry = ALL_REGISTRIES[kind]
        print(f"{kind} ({len(registry)}):")
        for entry in registry:
            print(f"  {entry.name:<24} {entry.description}")
            print(f"  {'':<24} ({entry.signature_text()})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssl-toolkit",
        description="Self-supervised learning (BYOL family) for images and audio, driven by YAML recipes.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="pretrain with a recipe")
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*", help="key.sub=value (YAML scalars)")
    p.add_argument("--out", help="run directory (default runs/<recipe-name>-<timestamp>)")
    p.add_argument("--resume", help="'auto' (last valid checkpoint in --out) or a checkpoint / run dir")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in an --out that already holds a run (deletes its checkpoints, metrics, encoder)",
    )
    p.add_argument(
        "--allow-recipe-change",
        action="store_true",
        help="resume although the recipe differs from the checkpoint's in more than length/logging keys",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("recipe", help="print a recipe after inheritance and overrides")
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*")
    p.set_defaults(func=_cmd_recipe)

    p = sub.add_parser("stats", help="compute (or show cached) pre-normalization statistics of a recipe")
    p.add_argument("recipe")
    p.add_argument("overrides", nargs="*")
    p.add_argument("--n", type=int, default=None, help="number of random training segments (default: the recipe's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--force", action="store_true", help="recompute even when cached")
    p.set_defaults(func=_cmd_stats)

    add_eval_parser(sub)
    add_embed_parser(sub)
    add_export_parser(sub)
    add_plot_parser(sub)
    add_shard_parser(sub)

    p = sub.add_parser("list", help="registered components with descriptions and parameters")
    p.add_argument("kind", nargs="?", help=", ".join(ALL_REGISTRIES))
    p.set_defaults(func=_cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    unknown = [e for e in extra if e.startswith("-") or not hasattr(args, "overrides")]
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if extra:  # overrides written after an option (argparse stops the positional list there)
        args.overrides = [*args.overrides, *extra]
    try:
        return args.func(args)
    except Exception as e:  # noqa: BLE001 - known failure kinds get one clear line
        code = exit_code(e)
        if code is None:
            raise
        print(f"error: {e}", file=sys.stderr)
        return code


# (module, class, exit code): a recipe or registry error is a usage error (2), the others a failed run (1)
KNOWN_ERRORS = (
    ("ssl_toolkit.recipe.errors", "RecipeError", 2),
    ("ssl_toolkit.registry", "RegistryError", 2),
    ("ssl_toolkit.eval.errors", "EvalError", 1),
    ("ssl_toolkit.training.loop", "TrainingError", 1),
    ("ssl_toolkit.checkpoint", "CheckpointError", 1),
    ("ssl_toolkit.data", "DatasetError", 1),
    ("ssl_toolkit.run_dir", "RunDirError", 1),
    ("ssl_toolkit.hub", "ExportError", 1),
)


def exit_code(error: BaseException):
    """The exit code of a known failure kind (its message is the one line to print), else None. A class whose
    module was never imported cannot have raised, so nothing is imported here."""
    for module, name, code in KNOWN_ERRORS:
        cls = getattr(sys.modules.get(module), name, None)
        if cls is not None and isinstance(error, cls):
            return code
    return None
