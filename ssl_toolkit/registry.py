"""A name → builder registry with decorator registration (torchvision/timm style).

Recipes name components; registries build them from ``{name: ..., **params}`` sections.
A duplicate name raises, an unknown name lists the known ones with the closest match,
and parameters are checked against the builder's signature before anything is built.
"""

from __future__ import annotations

import difflib
import inspect
import typing
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from .params import declaration


class RegistryError(KeyError):
    """Unknown or duplicate component name, or a bad parameter for a component."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else ""


def did_you_mean(name: str, choices) -> str:
    """' (did you mean 'x'?)' for the closest of ``choices``, or ''."""
    if not isinstance(name, str) or len(name) > 64:
        return ""
    close = difflib.get_close_matches(name, [str(c) for c in choices], n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


@dataclass(frozen=True)
class Entry:
    name: str
    builder: Callable[..., Any]
    description: str

    def parameters(self) -> dict[str, inspect.Parameter]:
        """Keyword parameters a recipe may set (``self``, ``*args``/``**kwargs`` excluded)."""
        sig = inspect.signature(self.builder)
        return {
            n: p
            for n, p in sig.parameters.items()
            if n != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }

    def hints(self) -> dict[str, Any]:
        """The builder's parameter annotations with their ``Annotated`` declarations ({} when unresolvable)."""
        try:
            target = self.builder.__init__ if inspect.isclass(self.builder) else self.builder
            return typing.get_type_hints(target, include_extras=True)
        except Exception:  # noqa: BLE001 - unresolvable annotations: skip type checks, keep name checks
            return {}

    def signature_text(self) -> str:
        """``name=default`` per parameter, with its declared range or choices (``p=0.5 in [0, 1]``)."""
        hints, parts = self.hints(), []
        for n, p in self.parameters().items():
            text = n if p.default is inspect.Parameter.empty else f"{n}={p.default!r}"
            base, constraints, _ = declaration(hints.get(n))
            declared = [c.interval for c in constraints]
            if typing.get_origin(base) is typing.Literal:
                declared.append("|".join(map(str, typing.get_args(base))))
            parts.append(text + "".join(f" in {d}" for d in declared if d))
        return ", ".join(parts)


class Registry:
    """Components of one kind (encoders, augmentations, ...) found by name."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def register(self, name: str | None = None, description: str | None = None):
        """Decorator: ``@ENCODERS.register("resnet18")``. The description defaults to the
        first line of the builder's docstring."""

        def decorator(builder):
            key = name or builder.__name__
            if key in self._entries:
                raise RegistryError(
                    f"{self.kind} '{key}' is already registered "
                    f"(by {self._entries[key].builder.__module__}); names must be unique"
                )
            doc = description or (inspect.getdoc(builder) or "").strip().splitlines()
            text = doc if isinstance(doc, str) else (doc[0] if doc else "")
            self._entries[key] = Entry(key, builder, text)
            return builder

        return decorator

    def get(self, name: str) -> Entry:
        if name not in self._entries:
            known = ", ".join(sorted(self._entries)) or "none registered"
            raise RegistryError(f"unknown {self.kind} '{name}'{did_you_mean(name, self._entries)}; known: {known}")
        return self._entries[name]

    def check_params(self, name: str, params: dict[str, Any], where: str = "") -> None:
        """Raise if ``params`` has a key the builder does not take or misses a required one."""
        entry = self.get(name)
        accepted = entry.parameters()
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in inspect.signature(entry.builder).parameters.values())
        prefix = f"{where}: " if where else ""
        if not takes_kwargs:
            for key in params:
                if key not in accepted:
                    raise RegistryError(
                        f"{prefix}{self.kind} '{name}' has no parameter '{key}'"
                        f"{did_you_mean(key, accepted)}; it takes: {entry.signature_text() or 'nothing'}"
                    )

    def build(self, name: str, /, *args, **params):
        """Build component ``name`` with keyword ``params`` (checked against its signature)."""
        self.check_params(name, params)
        return self.get(name).builder(*args, **params)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._entries)


ENCODERS = Registry("encoder")
HEADS = Registry("head")
AUGMENTATIONS = Registry("augmentation")
DATASETS = Registry("dataset")
OPTIMIZERS = Registry("optimizer")
SCHEDULES = Registry("schedule")
METHODS = Registry("method")
FRONTENDS = Registry("frontend")
HOOKS = Registry("hook")

ALL_REGISTRIES: dict[str, Registry] = {
    "encoders": ENCODERS,
    "heads": HEADS,
    "augmentations": AUGMENTATIONS,
    "datasets": DATASETS,
    "optimizers": OPTIMIZERS,
    "schedules": SCHEDULES,
    "methods": METHODS,
    "frontends": FRONTENDS,
    "hooks": HOOKS,
}
