"""The files an input names, in a fixed order: a folder (searched recursively for one modality's files, by
extension) or an EVAR-style metadata CSV. Read by ``ssl-toolkit embed`` and ``Encoder.embed`` / ``list_files``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from .eval.errors import EvalError


@dataclass
class Inputs:
    root: Path  # the folder, or the CSV's folder
    paths: list[Path]
    names: list[str]  # what ``files`` stores
    source: str  # 'folder' | 'csv'


def list_inputs(spec: str | Path, modality: str, root: Optional[str | Path] = None) -> Inputs:
    """The files INPUT names, in a fixed order (sorted paths for a folder, the CSV's order); a CSV's file names
    resolve against ``root`` (relative to the CSV's folder; default: that folder)."""
    from .audio.dataset import AUDIO_EXTENSIONS
    from .audio.metadata import read_metadata_csv
    from .image.datasets import IMAGE_EXTENSIONS

    path = Path(spec).expanduser()
    if path.is_dir():
        exts = AUDIO_EXTENSIONS if modality == "audio" else IMAGE_EXTENSIONS
        paths = sorted(
            p for p in path.rglob("*") if p.suffix.lower() in exts and p.is_file() and not p.name.startswith(".")
        )
        if not paths:
            raise EvalError(f"embed: no {modality} files ({', '.join(exts)}) found in {path}")
        return Inputs(path, paths, [p.relative_to(path).as_posix() for p in paths], "folder")
    if path.is_file() and path.suffix.lower() == ".csv":
        try:
            table = read_metadata_csv(path)
        except (OSError, ValueError) as e:
            raise EvalError(f"embed: {e}") from None
        names = [r["file_name"] for r in table.rows]
        if not names:
            raise EvalError(f"embed: {path} lists no files")
        base = path.parent / Path(root).expanduser() if root is not None else path.parent
        return Inputs(base, [base / n for n in names], names, "csv")
    what = "not a folder or a .csv file" if path.exists() else "no such file or directory"
    raise EvalError(f"embed: INPUT {spec}: {what} (give a folder of files or an EVAR-style metadata CSV)")
