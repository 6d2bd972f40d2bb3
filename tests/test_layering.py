"""The package's import graph: no module imports from a higher layer, and there is no import cycle.

The graph is read from the source with `ast` (nothing is imported): every `import x` and
`from x import y`, at module level or inside functions, relative imports resolved, restricted to
`atvg_tf`. `from package import name` where `name` is a submodule is an import of the submodule;
importing a package is an import of its `__init__`, named by the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "atvg_tf"
PACKAGE_DIR = Path(__file__).resolve().parents[1] / PACKAGE

# Lowest first: a module may import from its own layer and the ones below it.
LAYERS: dict[str, int] = {
    "atvg_tf": 0,  # the package __init__ itself (not its subpackages)
    "atvg_tf.errors": 0,
    "atvg_tf.utils": 0,
    "atvg_tf._native": 0,
    "atvg_tf.frontend": 1,
    "atvg_tf.rendering": 1,  # numpy/OpenCV only: mobile_demo imports it without TensorFlow
    "atvg_tf.data": 2,
    "atvg_tf.models": 2,
    "atvg_tf.training": 3,
    "atvg_tf.generation": 3,
    "atvg_tf.evaluation": 4,
    "atvg_tf.export": 4,
    "atvg_tf.convert": 4,
    "atvg_tf.avatar": 4,  # atvg finetune: prepare, train and evaluate on one person's footage
    "atvg_tf.app": 5,  # the web page: Gradio over generation and the LiteRT runtime
    "atvg_tf.cli": 5,
}


# ---------------------------------------------------------------------------------------------
# Building the graph


def find_modules(package_dir: Path, package: str = PACKAGE) -> dict[str, Path]:
    """Dotted module name -> source file, for every `.py` file under `package_dir`."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = [package, *path.relative_to(package_dir).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _known_prefix(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is one of `modules` (`a.b.C` -> `a.b` for a class C)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def imports_of(module: str, path: Path, modules: dict[str, Path], package: str = PACKAGE) -> set[str]:
    """The modules of `package` that `module` (source at `path`) imports anywhere in its code."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = module.split(".") if is_package else module.split(".")[:-1]
                if node.level > 1:
                    base_parts = base_parts[: -(node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                names.append(submodule if alias.name != "*" and submodule in modules else base)
        for name in names:
            if name == package or name.startswith(package + "."):
                target = _known_prefix(name, modules)
                if target is not None:
                    found.add(target)
    return found


def import_graph(package_dir: Path = PACKAGE_DIR, package: str = PACKAGE) -> dict[str, set[str]]:
    """Module -> the modules of the package it imports."""
    modules = find_modules(package_dir, package)
    return {module: imports_of(module, path, modules, package) for module, path in modules.items()}


# ---------------------------------------------------------------------------------------------
# Checking it


def layer_of(module: str, layers: dict[str, int] = LAYERS) -> int | None:
    """The layer of a module: that of the longest listed name it equals or lies under.

    The package name itself only covers the package's `__init__`, not everything under it.
    """
    best, best_length = None, -1
    for prefix, layer in layers.items():
        covers = module == prefix or ("." in prefix and module.startswith(prefix + "."))
        if covers and len(prefix) > best_length:
            best, best_length = layer, len(prefix)
    return best


def layer_violations(graph: dict[str, set[str]], layers: dict[str, int] = LAYERS) -> list[str]:
    """`importer -> imported (layer a -> layer b)` for every import of a higher layer."""
    found = []
    for importer in sorted(graph):
        a = layer_of(importer, layers)
        for imported in sorted(graph[importer]):
            b = layer_of(imported, layers)
            if a is not None and b is not None and b > a:
                found.append(f"{importer} -> {imported} (layer {a} -> layer {b})")
    return found


def strongly_connected_components(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm (iterative); every node of the graph is in exactly one component."""
    nodes = sorted(set(graph) | {n for targets in graph.values() for n in targets})
    index, low, on_stack, stack, components, counter = {}, {}, set(), [], [], 0
    for root in nodes:
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def _cycle_through(start: str, members: set[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest import path start -> ... -> start of at least two modules, inside one strongly connected component."""
    previous, frontier = {}, [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph.get(node, ())):
                if child not in members or child == node:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [start, *reversed(path[:-1]), start]
                if child not in previous:
                    previous[child] = node
                    following.append(child)
        frontier = following
    raise AssertionError(f"{start} is not on a cycle")


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Cycles, each as a path whose first module is repeated at the end: one per strongly connected
    component of more than one module, and one per module that imports itself."""
    cycles = []
    for component in strongly_connected_components(graph):
        if len(component) > 1:
            cycles.append(_cycle_through(component[0], set(component), graph))
        cycles.extend([module, module] for module in component if module in graph.get(module, ()))
    return sorted(cycles)


# ---------------------------------------------------------------------------------------------
# The package


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph()


def test_every_module_has_a_layer(graph):
    unassigned = [module for module in sorted(graph) if layer_of(module) is None]
    assert not unassigned, "modules in no layer (add their package to LAYERS in tests/test_layering.py): " + ", ".join(unassigned)


def test_no_module_imports_from_a_higher_layer(graph):
    violations = layer_violations(graph)
    assert not violations, "imports from a higher layer:\n" + "\n".join(violations)


def test_no_import_cycles(graph):
    cycles = import_cycles(graph)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


# ---------------------------------------------------------------------------------------------
# The checks themselves, on small made-up packages


def test_cycles_and_self_imports_are_found():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}, "f": {"a"}}
    cycles = import_cycles(graph)
    assert cycles == [["a", "b", "c", "a"], ["e", "e"]]
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_imports_from_higher_layers_are_found():
    layers = {"pkg": 0, "pkg.low": 0, "pkg.mid": 1, "pkg.top": 2}
    graph = {
        "pkg": set(),
        "pkg.low.a": {"pkg", "pkg.mid.b"},
        "pkg.mid.b": {"pkg.low.a", "pkg.mid.c"},
        "pkg.mid.c": {"pkg.top"},
        "pkg.top": {"pkg.low.a", "pkg.mid.b"},
    }
    assert layer_violations(graph, layers) == [
        "pkg.low.a -> pkg.mid.b (layer 0 -> layer 1)",
        "pkg.mid.c -> pkg.top (layer 1 -> layer 2)",
    ]
    assert layer_of("pkg.other", layers) is None  # the package name covers only its __init__


def test_the_graph_resolves_relative_imports_and_submodules(tmp_path):
    root = tmp_path / "atvg_tf"
    files = {
        "__init__.py": "",
        "errors.py": "class AtvgError(Exception): pass\n",
        "data/__init__.py": "from . import shards\n",
        "data/shards.py": "from ..errors import AtvgError\nimport os\n",
        "data/prepare.py": (
            "import json\n"
            "from atvg_tf.data import shards, missing_name\n"
            "from .shards import write\n"
            "from atvg_tf import __version__\n"
            "def run():\n"
            "    from atvg_tf.training import train\n"
            "    import atvg_tf.data.prepare\n"
        ),
        "training/__init__.py": "",
        "training/train.py": "from ..data import prepare\nfrom ..data.prepare import run\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    graph = import_graph(root)
    assert graph == {
        "atvg_tf": set(),
        "atvg_tf.errors": set(),
        "atvg_tf.data": {"atvg_tf.data.shards"},
        "atvg_tf.data.shards": {"atvg_tf.errors"},
        "atvg_tf.data.prepare": {"atvg_tf.data", "atvg_tf.data.shards", "atvg_tf", "atvg_tf.training.train", "atvg_tf.data.prepare"},
        "atvg_tf.training": set(),
        "atvg_tf.training.train": {"atvg_tf.data.prepare"},
    }
    assert layer_violations(graph) == ["atvg_tf.data.prepare -> atvg_tf.training.train (layer 2 -> layer 3)"]
    assert import_cycles(graph) == [
        ["atvg_tf.data.prepare", "atvg_tf.data.prepare"],
        ["atvg_tf.data.prepare", "atvg_tf.training.train", "atvg_tf.data.prepare"],
    ]
