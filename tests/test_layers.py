"""The layers of docs/architecture.md that the cycle check alone does not catch: the sweep and the
engine never reach up into the command line or the Python API (not even inside a function); what
they show goes through the display their caller passes (sweep/display.py)."""

from tests.test_codebase import import_graph

UPPER = ("vaebench.cli", "vaebench.api")


def _imports_of(prefixes: tuple[str, ...], forbidden: tuple[str, ...]) -> dict[str, list[str]]:
    graph = import_graph()
    found = {
        module: sorted({t for t in targets for f in forbidden if t == f or t.startswith(f + ".")})
        for module, targets in graph.items()
        if module.startswith(prefixes)
    }
    return {m: t for m, t in found.items() if t}


def test_sweep_and_engine_import_neither_the_cli_nor_the_api():
    assert not _imports_of(("vaebench.sweep", "vaebench.engine"), UPPER)


def test_the_engine_imports_no_sweep():
    assert not _imports_of(("vaebench.engine",), ("vaebench.sweep",))


def test_the_check_finds_function_level_imports():
    # `vaebench run` imports the sweep inside the command function
    assert "vaebench.sweep.run" in _imports_of(("vaebench.cli.commands",), ("vaebench.sweep",))["vaebench.cli.commands"]
