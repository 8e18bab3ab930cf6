"""Recipes: YAML loading (safe), ``base:`` inheritance, ``a.b=c`` overrides and typed validation.

Every error is a :class:`RecipeError` that names the file the key came from, the key path and
what was expected, with a did-you-mean for misspelled keys and component names.
"""
from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import os
import types
import typing
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from .registry import ALL_REGISTRIES, Registry, RegistryError, did_you_mean

COMMAND_LINE = "command line"


class RecipeError(ValueError):
    """A recipe that cannot be used, with the file and key path that are at fault."""

    def __init__(self, message: str, file: str | None = None, key: str | None = None):
        self.file, self.key, self.message = file, key, message
        where = ": ".join(p for p in (file, f"key '{key}'" if key else None) if p)
        super().__init__(f"{where}: {message}" if where else message)


class Component(dict):
    """A recipe section ``{name: <registered name>, <param>: <value>, ...}``."""

    @property
    def name(self) -> str:
        return self["name"]

    @property
    def params(self) -> dict[str, Any]:
        return {k: v for k, v in self.items() if k != "name"}


# ----------------------------------------------------------------------------- schemas
@dataclasses.dataclass
class DataConfig:
    dataset: Component = dataclasses.field(metadata={"registry": "datasets"})
    batch_size: int = 256
    """Per-process batch size (the global batch is batch_size × world size × grad_accum_steps)."""
    num_workers: int = 0
    shuffle: bool = True
    drop_last: bool = True
    pin_memory: bool = True
    prefetch_factor: Optional[int] = None


@dataclasses.dataclass
class ViewsConfig:
    """Device-side, batched view generation: ``input`` ops once on the raw batch, one ``branches``
    pipeline per view, then ``joint`` ops on all views stacked along the batch."""

    branches: list[list[Component]] = dataclasses.field(metadata={"registry": "augmentations"})
    input: list[Component] = dataclasses.field(default_factory=list, metadata={"registry": "augmentations"})
    joint: list[Component] = dataclasses.field(default_factory=list, metadata={"registry": "augmentations"})


@dataclasses.dataclass
class ModelConfig:
    encoder: Component = dataclasses.field(metadata={"registry": "encoders", "supplied": ()})
    projector: Component = dataclasses.field(metadata={"registry": "heads", "supplied": ("in_dim",)})
    predictor: Optional[Component] = dataclasses.field(
        default=None, metadata={"registry": "heads", "supplied": ("in_dim",)}
    )


@dataclasses.dataclass
class EmaConfig:
    """Target update ξ ← τξ + (1−τ)θ (BYOL eq. 1 context); cosine: τ_k = 1 − (1−τ_base)(cos(πk/K)+1)/2."""

    tau_base: float = 0.996
    schedule: Literal["cosine", "constant"] = "cosine"
    buffers: Literal["copy", "ema"] = "copy"


@dataclasses.dataclass
class OptimizerConfig:
    name: str
    lr: float
    """Base learning rate; the applied rate is lr × global_batch/256 when lr_scaling is 'linear'."""
    lr_scaling: Literal["none", "linear"] = "none"
    weight_decay: float = 0.0
    exclude_bias_and_norm: bool = True
    """Biases and normalization parameters get no weight decay (nor LARS adaptation)."""
    options: dict = dataclasses.field(default_factory=dict)
    """Optimizer-specific keyword arguments (momentum, betas, trust_coefficient, ...)."""


@dataclasses.dataclass
class TrainerConfig:
    epochs: int = 100
    max_steps: Optional[int] = None
    """Optional cap on optimizer steps; when set it overrides epochs."""
    max_minutes: Optional[float] = None
    """Optional wall-clock budget of this process: at the first log step past it the run ends as a finished
    run (last.pt + encoder.pt). The lr/τ schedules still span epochs/max_steps: size those to the budget."""
    log_every: int = 10
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    grad_accum_steps: int = 1
    channels_last: bool = False
    compile: bool = False
    sync_batchnorm: bool = False
    collapse_threshold: float = 0.25
    """Warn when the projection std × √d falls below this (≈1 healthy, →0 collapsed)."""
    progress: bool = True
    tensorboard: bool = True


@dataclasses.dataclass
class Recipe:
    name: str
    data: DataConfig
    views: ViewsConfig
    model: ModelConfig
    optimizer: OptimizerConfig
    method: Component = dataclasses.field(
        default_factory=lambda: Component(name="byol"),
        metadata={"registry": "methods", "supplied": ("encoder", "projector", "predictor", "ema")},
    )
    schedule: Component = dataclasses.field(
        default_factory=lambda: Component(name="warmup_cosine"),
        metadata={"registry": "schedules", "supplied": ("total_steps", "steps_per_epoch")},
    )
    ema: EmaConfig = dataclasses.field(default_factory=EmaConfig)
    trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
    seed: int = 0
    device: str = "auto"
    """auto | cpu | cuda | cuda:N"""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    out_dir: Optional[str] = None
    """Run directory; default runs/<name>-<timestamp>."""
    imports: list[str] = dataclasses.field(default_factory=list)
    """Python modules to import first, so that their components register themselves."""
    description: str = ""

    def to_dict(self) -> dict:
        return to_plain(self)


def to_plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


# ----------------------------------------------------------------------------- loading
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


# ----------------------------------------------------------------------------- validation
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
    def __init__(self, origins: Origins):
        self.origins = origins

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
        if dataclasses.is_dataclass(tp):
            return self.dataclass(tp, value, path)
        if tp is Component:
            return self.component(value, path, meta)
        if origin is Literal:
            allowed = typing.get_args(tp)
            if value not in allowed:
                self.fail(path, f"expected {_type_name(tp)}, got {value!r}{did_you_mean(value, allowed)}")
            return value
        if origin is list:
            if not isinstance(value, list):
                self.fail(path, f"expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
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
            self.fail(path, f"expected {tp.__name__}, got {type(value).__name__} {value!r}")
        return value

    def dataclass(self, cls: type, value: Any, path: tuple) -> Any:
        if not isinstance(value, dict):
            self.fail(path, f"expected a mapping, got {type(value).__name__} {value!r}")
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
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                self.fail(path + (name,), f"required value missing (expected {_type_name(hints[name])})")
        return cls(**kwargs)

    def component(self, value: Any, path: tuple, meta: dict) -> Component:
        if isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, dict) or "name" not in value:
            self.fail(path, f"expected a mapping with a 'name' key, got {value!r}")
        if not isinstance(value["name"], str):
            self.fail(path + ("name",), f"expected a component name (str), got {value['name']!r}")
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
            hints = _safe_hints(entry.builder)
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
                tp = hints.get(key)
                if tp in (int, float, str, bool) and v is not None:
                    value[key] = self.scalar(tp, v, path + (key,))
            for pname, p in params.items():
                if p.default is inspect.Parameter.empty and pname not in supplied and pname not in value:
                    self.fail(path + (pname,), f"required parameter of {registry.kind} '{name}' missing")
        return Component(value)


def _safe_hints(fn) -> dict:
    try:
        target = fn.__init__ if inspect.isclass(fn) else fn
        return typing.get_type_hints(target)
    except Exception:  # unresolvable annotations: skip type checks, keep name checks
        return {}


def import_components(modules: list[str] = ()) -> None:
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


def load_recipe(path: str | os.PathLike, overrides: list[str] = ()) -> Recipe:
    """Load, inherit, override and validate a training recipe."""
    tree, origins = load_resolved_tree(path, overrides)
    import_tree_components(tree, origins)
    validator = Validator(origins)
    recipe = validator.dataclass(Recipe, tree, ())
    _check_optimizer(recipe, validator)
    return recipe


def _check_optimizer(recipe: Recipe, validator: Validator) -> None:
    """``optimizer.name`` must be registered and ``optimizer.options`` must be its parameters."""
    registry = ALL_REGISTRIES["optimizers"]
    try:
        entry = registry.get(recipe.optimizer.name)
    except RegistryError as e:
        validator.fail(("optimizer", "name"), str(e))
    generic = {"params", "lr", "weight_decay"}
    choices = [p for p in entry.parameters() if p not in generic]
    for key in recipe.optimizer.options:
        if key not in choices:
            hint = " (set it as optimizer.weight_decay / optimizer.lr)" if key in generic else ""
            validator.fail(("optimizer", "options", key),
                           f"optimizer '{entry.name}' has no option '{key}'{did_you_mean(key, choices)}{hint}; "
                           f"it takes: {', '.join(choices) or 'nothing'}")


def validate(cls: type, tree: dict, source: str = "recipe"):
    """Validate a mapping against any schema dataclass (used by eval recipes too)."""
    origins = Origins()
    origins.record(tree, source)
    return Validator(origins).dataclass(cls, tree, ())


def expand_path(path: str | os.PathLike) -> Path:
    """A recipe path with ``~`` and ``$VAR``/``${VAR}`` expanded, and nothing else."""
    return Path(os.path.expandvars(os.path.expanduser(str(path))))
