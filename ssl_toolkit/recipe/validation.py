"""Checking a recipe tree against a schema dataclass: types, unknown keys, component names and
parameters (against their registries, after importing the modules of ``imports:``), with the file
and key path at fault in every error.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import types
import typing
from typing import Any, Literal, Sequence

from ..params import Range, declaration, reference_of
from ..quoting import short_repr
from ..registry import ALL_REGISTRIES, Registry, RegistryError, did_you_mean
from .errors import RecipeError
from .loading import Origins
from .schema import Component


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is Component:
        return "a component mapping with 'name'"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


class Validator:
    """Validates a recipe tree. ``context``: the whole tree (what a reference check may compare with, e.g. the
    encoder's modality); ``check_files``: whether parameters that name files are checked to exist (``Reference``)."""

    def __init__(self, origins: Origins, context: dict | None = None, check_files: bool = True):
        self.origins, self.context, self.check_files = origins, context, check_files
        self.references: list = []

    def reference(self, ref, value: Any, siblings: dict, path: tuple) -> None:
        """Note a parameter that names a file, folder or recipe (params.Reference); :meth:`check_references` checks
        them all once the whole recipe's shape is valid."""
        if ref is not None and value is not None:
            self.references.append((ref, value, dict(siblings), path))

    def check_references(self) -> None:
        """Every noted reference must name what it should, in recipe order (skipped without ``check_files``)."""
        for ref, value, siblings, path in self.references if self.check_files else ():
            problem = ref.check(value, siblings, self.context)
            if problem:
                self.fail(path, problem)

    def fail(self, path: tuple, message: str):
        raise RecipeError(message, file=self.origins.of(path), key=".".join(map(str, path)) or None)

    def value(self, tp: Any, value: Any, path: tuple, meta: dict) -> Any:
        origin = typing.get_origin(tp)
        if origin in (typing.Union, types.UnionType):
            args = typing.get_args(tp)
            if value is None and type(None) in args:
                return None
            inner = [a for a in args if a is not type(None)]
            return self.value(inner[0], value, path, meta)
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            return self.dataclass(tp, value, path)
        if tp is Component:
            return self.component(value, path, meta)
        if origin is Literal:
            allowed = typing.get_args(tp)
            if value not in allowed:
                self.fail(path, f"expected {_type_name(tp)}, got {short_repr(value)}{did_you_mean(value, allowed)}")
            return value
        if origin is list:
            if not isinstance(value, list):
                self.fail(path, f"expected {_type_name(tp)}, got {type(value).__name__} {short_repr(value)}")
            (item_tp,) = typing.get_args(tp)
            return [self.value(item_tp, v, path + (i,), meta) for i, v in enumerate(value)]
        if tp is dict or origin is dict:
            if not isinstance(value, dict):
                self.fail(path, f"expected a mapping, got {type(value).__name__}")
            return dict(value)
        return self.scalar(tp, value, path)

    def scalar(self, tp: Any, value: Any, path: tuple) -> Any:
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if tp is float and isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
            try:
                return float(value)
            except ValueError:
                pass
        if tp in (int, float, str, bool) and (type(value) is not tp):
            self.fail(path, f"expected {tp.__name__}, got {type(value).__name__} {short_repr(value)}")
        return value

    def in_range(self, value: Any, interval: str, path: tuple) -> None:
        """``interval`` like ``[1, inf)``: brackets closed, parentheses open."""
        problem = Range(interval).check(value)
        if problem:
            self.fail(path, problem)

    def parameter(self, hint: Any, value: Any, path: tuple) -> Any:
        """A component parameter against its builder's annotation: type, ``Literal`` choices and the
        declared :mod:`~ssl_toolkit.params` constraints (None passes an Optional parameter)."""
        base, constraints, optional = declaration(hint)
        if value is None and optional:
            return None
        if typing.get_origin(base) is Literal or base in (int, float, str, bool):
            value = self.value(base, value, path, {})
        for constraint in constraints:
            problem = constraint.check(value)
            if problem:
                self.fail(path, problem)
        return value

    def dataclass(self, cls: type, value: Any, path: tuple) -> Any:
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping, got {type(value).__name__} {short_repr(value)}")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        for key in value:
            if key not in fields:
                self.fail(
                    path + (key,),
                    f"unknown key{did_you_mean(key, fields)}; "
                    f"'{'.'.join(map(str, path)) or 'recipe'}' takes: {', '.join(fields)}",
                )
        kwargs = {}
        for name, f in fields.items():
            if name in value:
                kwargs[name] = self.value(hints[name], value[name], path + (name,), dict(f.metadata))
                if "range" in f.metadata and kwargs[name] is not None:
                    self.in_range(kwargs[name], f.metadata["range"], path + (name,))
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                self.fail(path + (name,), f"required value missing (expected {_type_name(hints[name])})")
        for name, f in fields.items():  # after every field, so that a reference may be relative to another
            if name in kwargs:
                self.reference(f.metadata.get("reference"), kwargs[name], kwargs, path + (name,))
        return cls(**kwargs)

    def component(self, value: Any, path: tuple, meta: dict) -> Component:
        if isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, dict) or "name" not in value:
            self.fail(path, f"expected a mapping with a 'name' key, got {short_repr(value)}")
        if not isinstance(value["name"], str):
            self.fail(path + ("name",), f"expected a component name (str), got {short_repr(value['name'])}")
        value = dict(value)
        registry: Registry | None = ALL_REGISTRIES.get(meta.get("registry", ""))
        if registry is not None:
            name = value["name"]
            try:
                entry = registry.get(name)
            except RegistryError as e:
                self.fail(path + ("name",), str(e))
            params = entry.parameters()
            supplied = set(meta.get("supplied", ()))
            has_var_kw = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(entry.builder).parameters.values())
            hints = entry.hints()
            for key, v in value.items():
                if key == "name":
                    continue
                if key in supplied or (key not in params and not has_var_kw):
                    choices = [p for p in params if p not in supplied]
                    self.fail(
                        path + (key,),
                        f"{registry.kind} '{name}' has no parameter '{key}'{did_you_mean(key, choices)}; "
                        f"it takes: {', '.join(choices) or 'nothing'}",
                    )
                if key in hints:
                    value[key] = self.parameter(hints[key], v, path + (key,))
            for pname, p in params.items():
                if p.default is inspect.Parameter.empty and pname not in supplied and pname not in value:
                    self.fail(path + (pname,), f"required parameter of {registry.kind} '{name}' missing")
            for key, v in value.items():
                if key in hints:
                    self.reference(reference_of(hints[key]), v, value, path + (key,))
        return Component(value)


def import_components(modules: Sequence[str] = ()) -> None:
    """Import the built-in component modules (they register themselves) and any user modules."""
    for mod in ("ssl_toolkit.components", *modules):
        try:
            importlib.import_module(mod)
        except ImportError as e:
            raise RecipeError(f"cannot import module '{mod}': {e}", key="imports") from None


def import_tree_components(tree: dict, origins: Origins) -> None:
    """Check a recipe tree's ``imports:`` (a list of module names) and import the components."""
    imports = tree.get("imports", [])
    if not (isinstance(imports, list) and all(isinstance(m, str) for m in imports)):
        raise RecipeError("expected a list of module names", file=origins.of(("imports",)), key="imports")
    import_components(imports)


def validate(cls: type, tree: dict, source: str = "recipe", check_files: bool = True):
    """Validate a mapping against any schema dataclass (used by eval recipes too)."""
    origins = Origins()
    origins.record(tree, source)
    validator = Validator(origins, tree, check_files)
    out = validator.dataclass(cls, tree, ())
    validator.check_references()
    return out
