"""No import circles among ssl_toolkit's modules, counting imports inside functions too.

Every module's ``import`` / ``from ... import`` statements (anywhere in the file, relative or
absolute) that name an ssl_toolkit module are edges of a graph; a circle is a strongly connected
group of modules. ``from pkg import name`` is an edge to ``pkg.name`` when that is a module, else to
``pkg``. A package's own ``__init__`` being run first by a submodule import is not counted.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "ssl_toolkit"

KNOWN_CIRCLES: list[tuple[str, ...]] = []


def modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _known(name: str, mods: dict) -> str | None:
    """``name`` or its closest enclosing module of ssl_toolkit."""
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                edges.update(_known(a.name, mods) for a in node.names if a.name.split(".")[0] == "ssl_toolkit")
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source.split(".")[0] != "ssl_toolkit":
                    continue
                for a in node.names:
                    full = f"{source}.{a.name}"
                    edges.add(full if full in mods else _known(source, mods))
        graph[name] = edges - {None, name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while not group or group[-1] != v:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                found.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_sees_top_level_and_function_level_imports():
    graph = import_graph()
    assert "ssl_toolkit.eval.cache" in graph["ssl_toolkit.eval.runner"]  # top level, relative
    assert {"ssl_toolkit.eval.errors", "ssl_toolkit.eval.schema"} <= graph["ssl_toolkit.eval"]  # in a package
    assert "ssl_toolkit.registry" in graph["ssl_toolkit.recipe"]
    assert "ssl_toolkit.api" in graph["ssl_toolkit.cli"]  # inside a function
    assert "ssl_toolkit.eval.plots" in graph["ssl_toolkit.eval.report"]  # `from . import plots` in a function
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_circles():
    graph = import_graph()
    for circle in KNOWN_CIRCLES:
        for a, b in zip(circle, circle[1:] + circle[:1]):
            graph[a].discard(b)
    found = circles(graph)
    assert not found, "import circles: " + "; ".join(" <-> ".join(c) for c in found)
