"""``ssl-toolkit export RUN OUT``: what you trained, as a folder in the layout the model hubs use (no network).

OUT holds ``config.json`` (``library_name: ssl_toolkit``, the encoder and front end, feature_dim, modality, sample
rate, the weights card), ``model.safetensors`` (the encoder weights, the card in the header, as
``encoder.safetensors``), ``README.md`` (a model card: YAML front matter with library_name, tags, pipeline_tag,
license, datasets and — with an eval ``results.json`` — a ``model-index``; then how to load it, what it was trained
on, the eval table beside the baselines and the weights' sha256) and ``recipe.yaml`` (the resolved training recipe).
:func:`ssl_toolkit.load_encoder` and the repository's ``hubconf.py`` read it. The folder is written under a hidden
temporary name and renamed into place, so a half-written export never looks complete. Uploading stays the user's
step (``huggingface-cli upload``, git lfs).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Optional

import yaml

from . import __version__
from .atomic import atomic_write_text
from .eval.errors import EvalError

EXPORT_FORMAT = "ssl_toolkit.export/1"
FILES = ("config.json", "model.safetensors", "README.md", "recipe.yaml")


class ExportError(RuntimeError):
    """An export that cannot be made, naming the run, the file or the option at fault."""


def _weights_file(run: Path, checkpoint: Optional[str | os.PathLike]) -> Path:
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        if not path.is_file():
            raise ExportError(f"export: --checkpoint {checkpoint}: no such file (give a checkpoints/*.pt of the run)")
        return path
    for name in ("encoder.safetensors", "encoder.pt"):
        if (run / name).is_file():
            return run / name
    raise ExportError(
        f"export: {run} has no finished encoder (encoder.safetensors / encoder.pt are written when "
        f"training ends); to export an unfinished run name a checkpoint: --checkpoint "
        f"{run / 'checkpoints' / 'last.pt'}"
    )


def _training_state(run: Path, weights: Path):
    """The training checkpoint that says how far the run went: ``weights`` itself when it is one, else the run's
    newest valid checkpoint; None when there is none."""
    from . import checkpoint as ckpt

    for path in ([weights] if weights.suffix == ".pt" else []) + ckpt.checkpoint_candidates(run):
        try:
            state = ckpt.load_checkpoint(path)
        except ckpt.CheckpointError:
            continue
        if ckpt.TrainingState.is_one(state):
            return ckpt.TrainingState.from_dict(state, path)
    return None


def _read_results(path: Optional[str | os.PathLike]) -> Optional[dict]:
    if path is None:
        return None
    from .eval.runner import RESULTS_FORMAT

    p = Path(path).expanduser()
    try:
        results = json.loads(p.read_text())
    except OSError as e:
        raise ExportError(f"export: --results {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise ExportError(f"export: --results {path}: not JSON ({e})") from None
    if not isinstance(results, dict) or results.get("format") != RESULTS_FORMAT:
        raise ExportError(
            f"export: --results {path}: not an ssl-toolkit eval results.json (format {RESULTS_FORMAT!r} expected)"
        )
    return results


def _datasets(recipe: dict) -> list[str]:
    """Short names of the training data: the last folder or file name of each dataset's root/path."""
    names: list[str] = []

    def visit(node) -> None:
        if isinstance(node, list):
            for v in node:
                visit(v)
        elif isinstance(node, dict):
            where = node.get("root") or node.get("path") or node.get("urls")
            if isinstance(where, str) and where:
                name = Path(where.rstrip("/")).stem or where
                if name not in names:
                    names.append(name)
            for v in node.values():
                visit(v)

    visit(((recipe or {}).get("data") or {}).get("dataset"))
    return names


def export_run(
    run: str | os.PathLike,
    out: str | os.PathLike,
    *,
    checkpoint: Optional[str | os.PathLike] = None,
    results: Optional[str | os.PathLike] = None,
    license: Optional[str] = None,
    overwrite: bool = False,
) -> Path:
    """Write the export folder ``out`` from run directory ``run`` (its finished encoder, or ``checkpoint``);
    returns ``out``. ExportError for a run without a finished encoder, an existing ``out`` (``overwrite`` replaces
    an earlier export or an empty folder, never other files) or a bad ``results`` file."""
    from .checkpoint import save_encoder_safetensors, sha256_file
    from .encoder_source import read_encoder

    for name, value in (("run", run), ("out", out)):
        if not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"export: {name} must be a path, got {type(value).__name__}")
    run, out = Path(run).expanduser(), Path(out).expanduser()
    if not run.is_dir():
        raise ExportError(
            f"export: RUN {run}: {'not a folder' if run.exists() else 'no such folder'} (give the "
            "run directory of `ssl-toolkit train`)"
        )
    if license is not None and not (isinstance(license, str) and license.strip() and "\n" not in license):
        raise ExportError(f"export: --license {license!r}: give a license id such as mit or apache-2.0")
    if (out.exists() or out.is_symlink()) and not overwrite:
        raise ExportError(f"export: OUT {out} already exists; choose a new folder or pass --overwrite")
    if run.resolve() == out.resolve() or out.resolve() in run.resolve().parents:
        raise ExportError(
            f"export: OUT {out} is the run directory {run} or holds it; an export never replaces "
            "the run it reads: choose another folder"
        )
    if (out.exists() or out.is_symlink()) and not _replaceable(out):
        raise ExportError(
            f"export: OUT {out} is neither an empty folder nor an earlier export holding only its files "
            f"({', '.join(FILES)}; config.json of format {EXPORT_FORMAT}); --overwrite replaces only those: choose "
            "a new folder"
        )
    weights = _weights_file(run, checkpoint)
    try:
        enc = read_encoder(weights, "export:")
    except EvalError as e:  # weights it cannot read: an export error, as the caller catches it
        raise ExportError(str(e)) from None
    recipe = enc.recipe or {}
    state = _training_state(run, weights)
    facts = {
        "steps": state.step if state else None,
        "epochs": state.epoch if state else None,  # 0-based epoch index
        "data_items": state.data_items if state else None,
        "checkpoint": weights.name,
    }
    scores = _read_results(results)

    tmp = out.parent / f".{out.name}.export-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
    except OSError as e:
        raise ExportError(f"export: cannot create {out.parent}: {e.strerror or e}") from None
    try:
        card = enc.card
        save_encoder_safetensors(tmp / "model.safetensors", enc.backbone.state_dict(), card.to_dict())
        recipe_text = yaml.safe_dump(recipe, sort_keys=False)
        atomic_write_text(tmp / "recipe.yaml", recipe_text)
        config = {
            "library_name": "ssl_toolkit",
            "format": EXPORT_FORMAT,
            "toolkit_version": __version__,
            "architecture": enc.encoder_spec["name"],
            "encoder": enc.encoder_spec,
            "frontend": enc.frontend_spec,
            "feature_dim": enc.feature_dim,
            "modality": enc.modality,
            "sample_rate": enc.sample_rate,
            "unit_sec": enc.unit_sec,
            "method": ((recipe.get("method") or {}).get("name")),
            "recipe_name": enc.recipe_name,
            "recipe_sha256": hashlib.sha256(recipe_text.encode()).hexdigest(),
            "weights_sha256": sha256_file(tmp / "model.safetensors"),
            "training": facts,
            "card": card.to_plain(),
        }
        atomic_write_text(tmp / "config.json", json.dumps(config, indent=1, default=str) + "\n")
        from .model_card import render_model_card

        atomic_write_text(
            tmp / "README.md", render_model_card(out.name, config, recipe, _datasets(recipe), scores, license)
        )
        _move_into_place(tmp, out)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ExportError(f"export: writing {out} failed ({e.strerror or e}); nothing was changed") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _replaceable(out: Path) -> bool:
    """Whether ``--overwrite`` may replace ``out``: an empty folder or an earlier export holding only the export's
    files (not one a user added to: a clone's .git, notes), never other files."""
    if not out.is_dir():
        return False
    if not any(out.iterdir()):
        return True
    if any(p.name not in FILES for p in out.iterdir()):
        return False
    try:
        return json.loads((out / "config.json").read_text()).get("format") == EXPORT_FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _move_into_place(tmp: Path, out: Path) -> None:
    """``tmp`` becomes ``out`` by renames; a replaced ``out`` is deleted only once the new one is in place."""
    old = None
    if out.exists() or out.is_symlink():
        old = out.parent / f".{out.name}.replaced-{os.getpid()}"
        os.replace(out, old)
    try:
        os.replace(tmp, out)
    except OSError:
        if old is not None:
            os.replace(old, out)  # the previous export back where it was
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old)
        else:
            old.unlink()
