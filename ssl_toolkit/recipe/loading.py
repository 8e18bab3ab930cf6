"""Recipe trees from YAML files: safe loading, ``base:`` inheritance, ``a.b=c`` overrides, the
file each key came from (:class:`Origins`), and path expansion.
"""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import yaml

from .errors import RecipeError

COMMAND_LINE = "command line"


class Origins:
    """Which file set each key path (the most specific recorded prefix wins)."""

    def __init__(self):
        self.by_path: dict[tuple, str] = {}

    def record(self, tree: Any, source: str, prefix: tuple = ()) -> None:
        self.by_path[prefix] = source
        if isinstance(tree, dict):
            for k, v in tree.items():
                self.record(v, source, prefix + (k,))

    def of(self, path: tuple) -> str:
        for n in range(len(path), -1, -1):
            if path[:n] in self.by_path:
                return self.by_path[path[:n]]
        return "recipe"


def _read_yaml(path: Path) -> dict:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise RecipeError("recipe file not found", file=str(path)) from None
    except OSError as e:
        raise RecipeError(f"cannot read recipe: {e.strerror}", file=str(path)) from None
    try:
        data = yaml.safe_load(text)
    except yaml.constructor.ConstructorError as e:
        raise RecipeError(
            f"refused: {e.problem} (recipes are loaded safely; Python object tags are not allowed)",
            file=str(path),
        ) from None
    except yaml.YAMLError as e:
        raise RecipeError(f"not valid YAML: {e}", file=str(path)) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"expected a mapping at the top level, got {type(data).__name__}", file=str(path))
    return data


def deep_merge(base: dict, update: dict) -> dict:
    """Mappings merge key by key; any other value (lists included) replaces the base value."""
    out = copy.deepcopy(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def load_tree(path: str | os.PathLike, origins: Origins | None = None, _chain: tuple = ()) -> dict:
    """The raw merged mapping of ``path`` after resolving ``base:`` (relative to the file)."""
    path = Path(path).resolve()
    if path in _chain:
        raise RecipeError("circular 'base:' inheritance: " + " -> ".join(map(str, _chain + (path,))), file=str(path))
    origins = origins if origins is not None else Origins()
    data = _read_yaml(path)
    bases = data.pop("base", None)
    if bases is None:
        bases = []
    elif isinstance(bases, str):
        bases = [bases]
    elif not (isinstance(bases, list) and all(isinstance(b, str) for b in bases)):
        raise RecipeError("expected a file path or a list of file paths", file=str(path), key="base")
    merged: dict = {}
    for b in bases:
        base_path = (path.parent / os.path.expanduser(b)).resolve()
        if not base_path.exists():
            raise RecipeError(f"base recipe '{b}' not found (looked at {base_path})", file=str(path), key="base")
        merged = deep_merge(merged, load_tree(base_path, origins, _chain + (path,)))
    origins.record(data, str(path))
    return deep_merge(merged, data)


def parse_override(text: str) -> tuple[list[str], Any]:
    if "=" not in text:
        raise RecipeError(f"override '{text}' must look like key.sub=value", file=COMMAND_LINE)
    key, value = text.split("=", 1)
    parts = key.strip().split(".")
    if not all(parts):
        raise RecipeError(f"override '{text}' has an empty key part", file=COMMAND_LINE)
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as e:
        raise RecipeError(f"value of override '{text}' is not a YAML scalar: {e}", file=COMMAND_LINE, key=key) from None
    return parts, parsed


def apply_override(tree: dict, parts: list[str], value: Any, origins: Origins) -> None:
    node: Any = tree
    path: tuple = ()
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if isinstance(node, list):
            if not part.lstrip("-").isdigit() or not -len(node) <= int(part) < len(node):
                raise RecipeError(
                    f"'{part}' is not an index of a list of {len(node)} items", file=COMMAND_LINE, key=".".join(parts)
                )
            key: Any = int(part)
        elif isinstance(node, dict):
            key = part
        else:
            raise RecipeError(
                f"cannot set '{part}' inside a {type(node).__name__} value", file=COMMAND_LINE, key=".".join(parts)
            )
        path += (key,)
        if last:
            node[key] = value
        else:
            if isinstance(node, dict) and not isinstance(node.get(key), (dict, list)):
                node[key] = {}
            node = node[key]
    origins.record(value, COMMAND_LINE, path)


def load_resolved_tree(path: str | os.PathLike, overrides: list[str] = ()) -> tuple[dict, Origins]:
    """The mapping of a recipe file after ``base:`` inheritance and ``a.b=c`` overrides (not yet
    validated), with where each key came from; ``name`` defaults to the file's stem."""
    origins = Origins()
    tree = load_tree(path, origins)
    for text in overrides:
        apply_override(tree, *parse_override(text), origins)
    tree.setdefault("name", Path(path).stem)
    origins.by_path.setdefault(("name",), str(Path(path).resolve()))
    return tree, origins


def expand_path(path: str | os.PathLike) -> Path:
    """A recipe path with ``~`` and ``$VAR``/``${VAR}`` expanded, and nothing else."""
    return Path(os.path.expandvars(os.path.expanduser(str(path))))
