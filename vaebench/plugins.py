"""Plugins: modules that register model families, datasets or metrics when they are imported.

Two ways in, one effect (the module is imported once per process and registers what it defines):

- **Installed plugins** declare an entry point in the group `vaebench.plugins`, e.g. in their
  pyproject.toml::

      [project.entry-points."vaebench.plugins"]
      vampprior = "vaebench_vampprior"

  Every vaebench process imports them before its first registry lookup.
- **Local modules** (code that is not installed) are listed in a spec (`plugins: [my_pkg.my_vae]`)
  or given as `--plugin my_pkg.my_vae` to any command. The spec's list is stored with the study,
  so every worker, on any machine, imports them before it reads the spec; `vaebench run` hands its
  own `--plugin` modules to the workers it starts as `--plugin` flags of their command line. The
  current folder (and the spec's folder) are on the import path for them.

A plugin that cannot be imported, raises while importing, or registers a name that is taken is a
`PluginError` (exit 2) naming the module and the cause (an installed one: its distribution and entry
point too). Every loaded plugin is recorded in each results row (`plugins`): its module, distribution
and version, and the SHA-256 of its source. What each plugin registered, and where it was imported
from, is kept for this process (`registered_by`, `empty_plugins_note`): a plugin that registered
nothing (e.g. a folder of its name without `__init__.py`, imported as an empty namespace package) is
named in the "unknown name" errors of the registries.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata as metadata
import os
import sys
import traceback
from pathlib import Path
from typing import Iterable

from .errors import VaebenchError

ENTRY_POINT_GROUP = "vaebench.plugins"


class PluginError(VaebenchError):
    """A plugin module cannot be imported or fails while registering."""

    exit_code = 2


_loaded: dict[str, dict] = {}  # module name -> provenance record, in load order
_origins: dict[str, str] = {}  # module name -> where it was imported from (a file, or a namespace folder)
_registered: dict[str, list[tuple[str, str]]] = {}  # module name -> (kind, name) it registered while importing
_importing: list[str] = []  # the plugin modules being imported, innermost last
_preloaded: set[str] = set()  # plugin modules imported before vaebench loaded them: what they registered is unknown
_installed_done = False
_installing = False


def _source_sha256(module) -> str:
    """SHA-256 over the module's source: its file, or every .py file of its package (sorted paths)."""
    file = getattr(module, "__file__", None)
    if not file:
        return ""
    path = Path(file)
    files = sorted(path.parent.rglob("*.py")) if path.name == "__init__.py" else [path]
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(path.parent)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _distribution(module_name: str) -> tuple[str, str]:
    """(distribution name, version) that installs the module's top-level package, or ('', '')."""
    top = module_name.split(".")[0]
    try:
        dists = metadata.packages_distributions().get(top, [])
    except Exception:  # broken metadata of an unrelated package
        dists = []
    for dist in dists:
        try:
            return dist, metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return "", ""


def load_plugin(module_name: str, source: str = "") -> dict:
    """Import one plugin module (once per process) and return its provenance record. `source`
    says where it was named (a spec file, --plugin, an entry point) for error messages."""
    if module_name in _loaded:
        return _loaded[module_name]
    where = f" (named in {source})" if source else ""
    if not isinstance(module_name, str) or not module_name or not all(p.isidentifier() for p in module_name.split(".")):
        raise PluginError(f"plugin {module_name!r}{where}: not a Python module name")
    for folder in (os.getcwd(),):  # local modules: importable from the current folder, like `python -m`
        if folder not in sys.path:
            sys.path.append(folder)
    fresh = module_name not in sys.modules  # else what it registered is not seen
    _importing.append(module_name)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise PluginError(
                f"plugin {module_name!r}{where} cannot be imported: no module named {e.name!r} ({IMPORTABLE_HINT})"
            ) from None
        raise PluginError(f"plugin {module_name!r}{where} failed while importing: {_cause(e)}") from None
    except VaebenchError as e:
        raise PluginError(f"plugin {module_name!r}{where} failed while importing: {e}") from None
    except Exception as e:  # noqa: BLE001 - any error of user code is reported with its cause
        raise PluginError(f"plugin {module_name!r}{where} failed while importing: {_cause(e)}") from None
    finally:
        _importing.pop()
    _origins[module_name] = _origin(module)
    if not fresh:
        _preloaded.add(module_name)
    dist, version = _distribution(module_name)
    record = {"module": module_name, "distribution": dist, "version": version, "source_sha256": _source_sha256(module)}
    _loaded[module_name] = record
    return record


IMPORTABLE_HINT = "install it, run vaebench from the folder that contains it, or add that folder to PYTHONPATH"


def _origin(module) -> str:
    """Where a module was imported from: its file, or the folder(s) of a namespace package."""
    if getattr(module, "__file__", None):
        return str(module.__file__)
    folders = [str(p) for p in getattr(module, "__path__", [])]
    return f"{', '.join(folders) or '?'} (a namespace package: a folder without __init__.py)"


def note_registration(kind: str, name: str) -> None:
    """Called by `Registry.register` for every entry a plugin (or vaebench) registers: while a plugin
    module is being imported, the entry is counted as that plugin's."""
    if not _importing:
        return
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_name != "<module>":  # the module whose import registers
        frame = frame.f_back
    registrant = frame.f_globals.get("__name__", "") if frame is not None else ""
    if registrant.startswith("vaebench."):  # a built-in the plugin's import happened to load first
        return
    _registered.setdefault(_importing[-1], []).append((kind, name))


def registered_by(kind: str, name: str) -> str | None:
    """The plugin module that registered `name` in the `kind` registry while it was imported, or None
    (a built-in, or an entry registered outside a plugin's import)."""
    return next((m for m, entries in _registered.items() if (kind, name) in entries), None)


def empty_plugins_note() -> str:
    """' Plugin 'x' was imported from PATH and registered nothing.' for every plugin imported fresh by
    this process that registered no entry in any registry; '' when there is none."""
    notes = [
        f" Plugin {m!r} was imported from {_origins[m]} and registered nothing"
        + (
            " (a folder of that name in the current folder hides the real module?)"
            if "namespace" in _origins[m]
            else ""
        )
        + "."
        for m in _loaded
        if m in _origins and m not in _registered and m not in _preloaded
    ]
    return "".join(notes)


def _cause(e: BaseException) -> str:
    """The exception and the plugin's own line that raised it."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "importlib" not in f.filename]
    at = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    return f"{type(e).__name__}: {e}{at}"


def load_plugins(modules: Iterable[str], source: str = "") -> list[dict]:
    """Import each named plugin module (`load_plugin`), in order: what a spec's `plugins:` and
    `--plugin` do.

    Parameters:
        modules: module names (importable: installed, or in the current folder).
        source: what error messages name as their origin.

    Returns:
        list[dict]: each module's provenance record (module, distribution, version, source_sha256).
    A module that cannot be imported or fails while registering is a `PluginError`.

    Example:
        >>> vaebench.load_plugins(["my_vae"])
    """
    return [load_plugin(m, source) for m in modules]


def load_installed_plugins() -> None:
    """Import every entry point of the group `vaebench.plugins`, once per process (later calls return
    at once)."""
    global _installed_done, _installing
    if _installed_done or _installing:
        return
    _installing = True
    try:
        for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = ep.dist.metadata["Name"] if ep.dist is not None else ""
            version = ep.dist.version if ep.dist is not None else ""
            where = f"entry point '{ep.name} = {ep.value}' of {ENTRY_POINT_GROUP}" + (
                f" in the installed distribution {dist} {version}" if dist else ""
            )
            try:
                load_plugin(ep.value.split(":")[0].strip(), where)
            except PluginError as e:
                fix = f"pip uninstall {dist}" if dist else "uninstall it"
                raise PluginError(f"{e}. Every vaebench command imports it: fix it, or `{fix}`") from None
        _installed_done = True
    finally:
        _installing = False


def loaded_plugins() -> list[dict]:
    """Provenance of every plugin this process loaded: module, distribution, version, source_sha256."""
    return list(_loaded.values())


def try_load_plugins(modules: Iterable[str], source: str = "") -> dict[str, PluginError]:
    """Import each named plugin module (`load_plugin`); return the ones that failed, with their errors
    (the caller decides whether it needed them: results/row_plugins.py)."""
    failures = {}
    for module in modules:
        try:
            load_plugin(module, source)
        except PluginError as e:
            failures[module] = e
    return failures
