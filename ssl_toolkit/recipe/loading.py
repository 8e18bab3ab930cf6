"""Recipe trees from YAML files: safe loading, ``base:`` inheritance, ``a.b=c`` overrides, the
file each key came from (:class:`Origins`), and path expansion.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Sequence

import yaml

from ..paths import expand_path  # noqa: F401 - re-exported: recipes' paths
from .errors import RecipeError

COMMAND_LINE = "command line"
MAX_RECIPE_BYTES = 1 << 20
"""A recipe file larger than this is refused (the shipped ones are under 4 KiB)."""
MAX_EXPANDED_NODES = 100_000
"""A recipe whose YAML aliases expand to more values than this is refused (an "alias bomb": a few hundred
bytes that expand to billions of values)."""


def expanded_size(tree: Any) -> int:
    """How many values ``tree`` holds once every alias is expanded, counted in time linear in its distinct
    nodes; ValueError for a recursive (self-referencing) document."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: Any) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise ValueError("the document refers to itself through an alias")
        open_nodes.add(key)
        children = node.values() if isinstance(node, dict) else node
        sizes[key] = 1 + sum(size(c) for c in children)
        open_nodes.discard(key)
        return sizes[key]

    return size(tree)


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML safe loading that refuses a mapping naming one key twice (PyYAML keeps the last value silently)."""

    def construct_mapping(self, node, deep=False):
        seen: dict = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # '<<: *defaults': merged keys may be overridden here
                continue
            key, line = self.construct_object(key_node, deep=deep), key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise DuplicateKeyError(
                        f"duplicate key {key!r}: set on line {seen[key]} and again on line "
                        f"{line} (a mapping takes each key once)"
                    )
                seen[key] = line
            except TypeError:  # an unhashable key: PyYAML reports it
                continue
        return super().construct_mapping(node, deep=deep)


class DuplicateKeyError(ValueError):
    """A YAML mapping with one key twice."""


def _parse_yaml(text: str, file: str, key: str | None = None) -> Any:
    """Safe YAML loading of ``text``, refusing duplicate keys and documents whose aliases expand excessively."""
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
        n = expanded_size(data)
    except (ValueError, RecursionError) as e:
        raise RecipeError(
            f"refused: {e if isinstance(e, ValueError) else 'nested too deeply'}", file=file, key=key
        ) from None
    if n > MAX_EXPANDED_NODES:
        raise RecipeError(
            f"refused: its YAML aliases expand to more than {MAX_EXPANDED_NODES:,} values "
            f"(an alias bomb?); write the values out instead",
            file=file,
            key=key,
        )
    return data


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


def read_recipe_file(path: Path) -> dict:
    """The top-level mapping of one YAML recipe file, read safely: at most MAX_RECIPE_BYTES of UTF-8 text,
    no Python tags, no excessive alias expansion."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_RECIPE_BYTES + 1)
    except FileNotFoundError:
        raise RecipeError("recipe file not found", file=str(path)) from None
    except OSError as e:
        raise RecipeError(f"cannot read recipe: {e.strerror}", file=str(path)) from None
    if len(raw) > MAX_RECIPE_BYTES:
        raise RecipeError(f"refused: larger than {MAX_RECIPE_BYTES >> 20} MiB, not a recipe", file=str(path))
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RecipeError(f"not a text recipe: byte {e.start} is not UTF-8 (a binary file?)", file=str(path)) from None
    if "\x00" in text:
        raise RecipeError("not a text recipe: it contains NUL bytes (a binary file?)", file=str(path))
    try:
        data = _parse_yaml(text, str(path))
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


def swaps_component(old: Any, new: Any) -> bool:
    """Whether ``new`` names another component than ``old``: both mappings with a ``name`` key, the names
    different. The rule for inheritance and overrides: a component section whose ``name`` changes is
    replaced as a whole, so the new component never inherits the old one's parameters."""
    return (
        isinstance(old, dict)
        and isinstance(new, dict)
        and "name" in old
        and "name" in new
        and old["name"] != new["name"]
    )


def deep_merge(base: dict, update: dict) -> dict:
    """Mappings merge key by key, except a component section whose ``name`` changes, which replaces the base's
    (:func:`swaps_component`); any other value (lists included) replaces the base value."""
    out = copy.deepcopy(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict) and not swaps_component(out[k], v):
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
    data = read_recipe_file(path)
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
        parsed = _parse_yaml(value, COMMAND_LINE, key) if value.strip() else None
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
        if last and key == "name" and len(parts) > 1 and isinstance(node, dict) and node.get("name", value) != value:
            _keep_only_command_line(node, path[:-1], origins)  # another component: drop the old one's parameters
        if last:
            node[key] = value
        else:
            if isinstance(node, dict) and not isinstance(node.get(key), (dict, list)):
                node[key] = {}
            node = node[key]
    origins.record(value, COMMAND_LINE, path)


def _keep_only_command_line(section: dict, prefix: tuple, origins: Origins) -> None:
    """Remove the keys of a component ``section`` that came from recipe files (those set by earlier overrides
    stay): ``model.encoder.name=timm`` starts the section anew, as :func:`swaps_component` does for files."""
    for k in list(section):
        if origins.of(prefix + (k,)) != COMMAND_LINE:
            del section[k]


def load_resolved_tree(path: str | os.PathLike, overrides: Sequence[str] = ()) -> tuple[dict, Origins]:
    """The mapping of a recipe file after ``base:`` inheritance and ``a.b=c`` overrides (not yet
    validated), with where each key came from; ``name`` defaults to the file's stem."""
    origins = Origins()
    tree = load_tree(path, origins)
    for text in overrides:
        apply_override(tree, *parse_override(text), origins)
    tree.setdefault("name", Path(path).stem)
    origins.by_path.setdefault(("name",), str(Path(path).resolve()))
    check_required(tree, origins)
    return tree, origins


REQUIRED = "???"
"""A value a recipe leaves for its user to give (OmegaConf's mandatory-value marker), e.g. ``init_from: ???``."""


def check_required(tree: Any, origins: Origins, path: tuple = ()) -> None:
    """RecipeError for the first value still equal to REQUIRED after inheritance and overrides."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for k, v in items:
        if v == REQUIRED:
            key = ".".join(map(str, path + (k,)))
            raise RecipeError(
                f"required: this recipe leaves it to you; give it on the command line ({key}=...) "
                "or in a recipe that inherits this one",
                file=origins.of(path + (k,)),
                key=key,
            )
        check_required(v, origins, path + (k,))
