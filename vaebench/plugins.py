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
`PluginError` (exit 2) naming the module and the cause. Every loaded plugin is recorded in each
results row (`plugins`): its module, distribution and version, and the SHA-256 of its source.
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
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            raise PluginError(
                f"plugin {module_name!r}{where} cannot be imported: no module named {e.name!r} "
                f"(install it, or run from the folder that contains it)"
            ) from None
        raise PluginError(f"plugin {module_name!r}{where} failed while importing: {_cause(e)}") from None
    except VaebenchError as e:
        raise PluginError(f"plugin {module_name!r}{where} failed while importing: {e}") from None
    except Exception as e:  # noqa: BLE001 - any error of user code is reported with its cause
        raise PluginError(f"plugin {module_name!r}{where} failed while importing: {_cause(e)}") from None
    dist, version = _distribution(module_name)
    record = {"module": module_name, "distribution": dist, "version": version, "source_sha256": _source_sha256(module)}
    _loaded[module_name] = record
    return record


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
            load_plugin(ep.value.split(":")[0].strip(), f"entry point {ep.name!r} of {ENTRY_POINT_GROUP}")
        _installed_done = True
    finally:
        _installing = False


def loaded_plugins() -> list[dict]:
    """Provenance of every plugin this process loaded: module, distribution, version, source_sha256."""
    return list(_loaded.values())


def load_row_plugins(df) -> None:
    """Import the plugin modules results rows record in their `plugins` column (their families and
    metrics are named in the rows); a plugin that cannot be imported is a PluginError naming it."""
    if "plugins" not in getattr(df, "columns", ()):
        return
    modules = []
    for entries in df["plugins"]:
        for entry in entries if entries is not None else []:
            if entry["module"] not in modules:
                modules.append(entry["module"])
    load_plugins(modules, "the results rows' plugins column")
