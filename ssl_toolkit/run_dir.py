"""Guards of a run directory: one process at a time, no silent overwrite, no silent recipe change on resume.

- :class:`RunDirLock`: an exclusive ``flock`` on ``RUN_DIR/.lock`` held for the whole run (rank 0). The kernel
  releases it when the process ends, however it ends, so a killed run never leaves it stuck.
- :func:`check_output_location`: an output folder that cannot be written (a parent that is a file, permission
  denied, a read-only file system) is an error before any work is done.
- :func:`check_new_run`: a directory that already holds a run is refused without ``--resume`` or ``--overwrite``.
- :func:`recipe_changes`: what a resume would change against the checkpoint's recipe. Only the keys in
  :data:`SAFE_ON_RESUME` (length, logging, checkpointing, monitors, loader workers, device, and the initial
  weights ``model.init_*``, which a resume replaces by the checkpoint's) may differ unless
  the user accepts the change (``--allow-recipe-change``); the recipe of every resume is kept.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Optional

from .quoting import short_repr


class RunDirError(RuntimeError):
    """A run directory that is in use, or holds a run that would be lost."""


RUN_FILES = (
    "recipe.yaml",
    "metrics.csv",
    "encoder.pt",
    "encoder.safetensors",
    "checkpoints",
    "tensorboard",
    "skipped_files.txt",
)
SAFE_ON_RESUME = (
    "trainer.epochs",
    "trainer.max_steps",
    "trainer.max_minutes",
    "trainer.log_every",
    "trainer.checkpoint_every",
    "trainer.keep_checkpoints",
    "trainer.progress",
    "trainer.tensorboard",
    "trainer.collapse_threshold",
    "trainer.hooks",
    "data.num_workers",
    "data.pin_memory",
    "data.prefetch_factor",
    "device",
    "out_dir",
    "description",
    "model.init_from",
    "model.init_strict",
    "model.init_sha256",
)


class RunDirLock:
    """Exclusive lock of a run directory (``with RunDirLock(dir):``); raises TrainingError while another
    process holds it."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / ".lock"
        self.fd: Optional[int] = None

    def __enter__(self) -> "RunDirLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise RunDirError(
                f"{self.path.parent} is in use by another run (pid {holder}); wait for it to end "
                "or choose another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock
            self.fd = None


def held_lock(path: Path) -> Optional[Path]:
    """The run directory at or above ``path`` whose lock another process holds, or None."""
    for folder in (Path(path).resolve(), *Path(path).resolve().parents):
        lock = folder / ".lock"
        if not lock.is_file():
            continue
        fd = os.open(lock, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return folder
        finally:
            os.close(fd)
    return None


def check_output_location(path: Path, option: str = "--out") -> None:
    """Prove that ``path`` can be created (or written when it exists) before any work, by writing and removing a
    probe file in it or in its nearest existing parent; creates nothing. RunDirError names the problem."""
    path = Path(path)
    for folder in (path, *path.parents):
        if folder.exists() or folder.is_symlink():
            break
    if not folder.is_dir():
        raise RunDirError(
            f"{option} {path}: {folder} is {'a file' if folder.exists() else 'a broken link'}, "
            "not a folder; choose another output location"
        )
    try:
        fd, probe = tempfile.mkstemp(prefix=".ssl_toolkit-write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise RunDirError(
            f"{option} {path}: cannot write in {folder}: {e.strerror}; choose another output location"
        ) from None


def existing_run_files(run_dir: Path) -> list[str]:
    return [name for name in RUN_FILES if (Path(run_dir) / name).exists()]


def check_new_run(run_dir: Path, existing: list[str], overwrite: bool, delete: bool) -> None:
    """Refuse to start a fresh run over an existing one (``existing``: its run files) unless ``overwrite``;
    then ``delete`` (rank 0) removes those files."""
    if not existing:
        return
    if not overwrite:
        raise RunDirError(
            f"{run_dir} already holds a run ({', '.join(existing)}): continue it with --resume auto, "
            "start over with --overwrite (deletes those files), or choose another --out"
        )
    for name in existing if delete else []:
        target = run_dir / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()


def _flatten(tree: Any, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out or {prefix[:-1]: {}}
    return {prefix[:-1]: tree}


def recipe_changes(old: dict, new: dict, safe: tuple[str, ...] = SAFE_ON_RESUME) -> list[tuple[str, Any, Any]]:
    """``(key, checkpoint value, new value)`` for every key outside ``safe`` (and below) that differs. A schema key
    the checkpoint's recipe lacks (it predates the key) is unchanged when the new value is the key's default: the
    default keeps the behaviour the run had."""
    from .recipe.schema import schema_defaults

    a, b = _flatten(old), _flatten(new)
    defaults = schema_defaults()
    changed = []
    for key in sorted(set(a) | set(b)):
        if any(key == s or key.startswith(s + ".") for s in safe):
            continue
        if key not in a and key in defaults and b.get(key) == defaults[key]:
            continue
        if a.get(key, "<unset>") != b.get(key, "<unset>"):
            changed.append((key, a.get(key, "<unset>"), b.get(key, "<unset>")))
    return changed


def describe_changes(changes: list[tuple[str, Any, Any]], limit: int = 12) -> str:
    lines = [f"  {k}: {short_repr(a)} (checkpoint) -> {short_repr(b)} (now)" for k, a, b in changes[:limit]]
    if len(changes) > limit:
        lines.append(f"  ... and {len(changes) - limit} more")
    return "\n".join(lines)
