"""The layout is the architecture (docs/architecture.md, "Packages and directions"): imports between
vaebench's packages run one way, down `LAYERS`, and no module imports itself back through others.

Every import counts: module-level and function-level `import`/`from` statements, relative or not,
`importlib.import_module("vaebench....")` with a literal name, and the root package's lazy
`_EXPORTS`. A dynamic import whose target cannot be read from the source is allowed only where the
target is the user's (plugins.py imports plugin modules by name).
"""

import ast
import warnings
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "vaebench"

# Top to bottom: a package may import its own modules and the packages of later rows, never an
# earlier row. Packages in one row may not import each other, except the pairs in SIDEWAYS.
LAYERS = [
    ("vaebench", "__main__"),  # the public face: lazy names for the API, the registries
    ("cli", "api"),  # the commands and the terminal display; the Python API (run, load_results, ...)
    ("sweep",),  # orchestration on a machine, Optuna studies, workers, leases, storages
    ("tracking",),  # runs mirrored to MLflow / TensorBoard, fed by the worker from the engine's records and rows
    ("engine",),  # one run: train, evaluate, one row
    ("reporting",),  # tables and figures from rows and metric declarations
    ("results",),  # rows (schema, provenance, files), artifacts, status words
    ("spec",),  # the sweep spec: sections, grid, run ids, search
    ("models", "metrics", "data"),  # the families behind the registries
    ("objectives",),  # KL, likelihoods, bounds, KL-weight schedules
    ("options", "plugins", "registry", "errors", "runtime", "_version", "family"),  # shared vocabulary
]
SIDEWAYS = {
    ("api", "cli"),  # vaebench.run shows a sweep with the terminal display of `vaebench run` (cli/display.py)
    ("metrics", "data"),  # the FID classifier trains on a Dataset
    ("metrics", "models"),  # metrics evaluate a model through its interface
    ("registry", "plugins"),  # a registry imports the installed plugins before its first lookup
    ("registry", "errors"),
    ("plugins", "errors"),
    ("options", "registry"),
    ("runtime", "errors"),
    ("family", "options"),  # the deprecated alias
}
DYNAMIC_IMPORTS_ALLOWED = {
    "vaebench.plugins",  # imports the user's plugin modules by name
    "vaebench",  # the lazy public names: their modules are read from `_EXPORTS` (import_graph)
}
WARN_LINES, MAX_LINES = 500, 800


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _literal_import(node: ast.Call) -> str | None:
    """The module an `importlib.import_module("...")` call names, "" if it is not a literal, None if
    the call is not an import."""
    f = node.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
    if name not in ("import_module", "__import__"):
        return None
    if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
        return node.args[0].value
    return ""


def import_graph(mods: dict[str, Path] | None = None) -> tuple[dict[str, set[str]], dict[str, list[str]]]:
    """(module -> the vaebench modules it imports anywhere in its file, module -> its unreadable
    dynamic imports). `from package import submodule` counts the submodule only (Python runs every
    package's `__init__` before its modules anyway); `from module import name` counts the module."""
    mods = modules() if mods is None else mods
    graph: dict[str, set[str]] = {name: set() for name in mods}
    dynamic: dict[str, list[str]] = {}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                subs = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in mods]
                targets = subs if len(subs) == len(node.names) else [module, *subs]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.Call) and (target := _literal_import(node)) is not None:
                if target == "":
                    dynamic.setdefault(name, []).append(f"line {node.lineno}")
                targets = [target]
            elif (
                isinstance(node, ast.Assign)
                and name == "vaebench"
                and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets)
            ):
                targets = [f"vaebench.{ast.literal_eval(v)[0]}" for v in node.value.values]
            graph[name] |= {t for t in targets if t in mods and t != name}
    return graph, dynamic


def package_of(module: str) -> str:
    parts = module.split(".")
    return "vaebench" if len(parts) == 1 else parts[1]


def layer_of(package: str) -> int:
    for i, row in enumerate(LAYERS):
        if package in row:
            return i
    raise KeyError(f"package {package!r} is in no layer of tests/test_codebase.py: place it in LAYERS")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for src, targets in graph.items():
        a = package_of(src)
        for dst in targets:
            b = package_of(dst)
            if a == b or (a, b) in SIDEWAYS or layer_of(b) > layer_of(a):
                continue
            bad.append(f"{src} -> {dst} ({a} may not import {b})")
    return sorted(bad)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_the_graph_sees_importlib_and_function_level_imports(tmp_path):
    """A cycle written through importlib is a cycle (the one data.py <-> datasets/base.py once hid)."""
    pkg = tmp_path / "vaebench"
    (pkg / "data").mkdir(parents=True)
    (pkg / "__init__.py").write_text('_EXPORTS = {"load": ("data", "load")}\n')
    (pkg / "data" / "__init__.py").write_text("from .base import load\n")
    (pkg / "data" / "base.py").write_text(
        "import importlib\n\ndef load():\n    importlib.import_module('vaebench.data')\n"
        "    from ..sweep import run\n    name = 'x'\n    importlib.import_module(name)\n"
    )
    (pkg / "sweep.py").write_text("")
    mods = {
        "vaebench": pkg / "__init__.py",
        "vaebench.data": pkg / "data" / "__init__.py",
        "vaebench.data.base": pkg / "data" / "base.py",
        "vaebench.sweep": pkg / "sweep.py",
    }
    graph, dynamic = import_graph(mods)
    assert graph["vaebench"] == {"vaebench.data"}  # the lazy exports
    assert graph["vaebench.data.base"] == {"vaebench.data", "vaebench.sweep"}
    assert cycles(graph) == [["vaebench.data", "vaebench.data.base"]]
    assert upward_imports(graph) == ["vaebench.data.base -> vaebench.sweep (data may not import sweep)"]
    assert dynamic == {"vaebench.data.base": ["line 7"]}


def test_every_package_has_a_layer():
    for module in modules():
        layer_of(package_of(module))


def test_no_import_cycle_between_vaebench_modules():
    found = cycles(import_graph()[0])
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_imports_run_one_way_down_the_layers():
    bad = upward_imports(import_graph()[0])
    assert not bad, "imports against the direction of LAYERS:\n" + "\n".join(bad)


def test_no_dynamic_import_hides_its_target():
    dynamic = {m: where for m, where in import_graph()[1].items() if m not in DYNAMIC_IMPORTS_ALLOWED}
    assert not dynamic, f"importlib calls with a computed module name (write the name, or import it): {dynamic}"


def test_the_real_graph_sees_relative_function_level_and_lazy_imports():
    graph = import_graph()[0]
    assert "vaebench.data.base" in graph["vaebench.data"]  # from .base import ...
    assert "vaebench.reporting.write" in graph["vaebench.api"]  # inside api.report
    assert "vaebench.metrics.fid" in graph["vaebench.metrics"]  # the built-in metrics' loader
    assert "vaebench.api" in graph["vaebench"]  # the lazy public names


def test_module_size_is_a_warning_sign_not_a_design_rule():
    sizes = {str(p.relative_to(PACKAGE.parent)): len(p.read_text().splitlines()) for p in modules().values()}
    long = {p: n for p, n in sizes.items() if n > WARN_LINES}
    if long:
        warnings.warn(f"modules over {WARN_LINES} lines (is each still one concept?): {long}", stacklevel=1)
    too_long = {p: n for p, n in long.items() if n > MAX_LINES}
    assert not too_long, f"modules over {MAX_LINES} lines: split them by concept: {too_long}"
