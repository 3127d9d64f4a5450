"""A tiny registry: a dict from a name used in specs to an object, with helpful lookup errors.

Each family (datasets, models, likelihoods, metrics) owns one `Registry` and fills it where the
entries are defined, so adding an entry touches one file plus its test.
"""

from __future__ import annotations

import difflib
import re
from typing import Callable, Generic, Iterator, TypeVar

from .errors import RegistryError

T = TypeVar("T")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def did_you_mean(name: str, choices) -> str:
    """' Did you mean 'x'?' for the closest of `choices`, or ''. The one home of that hint."""
    close = difflib.get_close_matches(str(name), list(choices), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def unknown_name(kind: str, name: str, choices: list[str], listing: str = "Available") -> str:
    """ "unknown <kind> 'x'. Did you mean 'y'? <listing>: a, b, c": the one wording of an unknown name
    (a registry lookup, an objective's metric), `choices` listed in the order given."""
    return f"unknown {kind} {name!r}.{did_you_mean(name, choices)} {listing}: {', '.join(choices)}"


class Registry(Generic[T]):
    """A name -> entry table. `load`, when given (here or through `on_first_use`), is called once
    before the first lookup or registration: it imports the modules that fill the registry, so that a
    process that never looks an entry up never pays for their imports, and the built-ins always come
    before a plugin's entries. The package that owns the built-ins sets it (its `__init__`), never the
    module that defines the registry: the built-ins import that module, and an import back would be a
    cycle."""

    def __init__(
        self, kind: str, load: Callable[[], None] | None = None, check: Callable[[str, T], None] | None = None
    ) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._load = load
        self._check = check  # validates an entry when it registers (raises ValueError)

    def on_first_use(self, load: Callable[[], None]) -> None:
        """Call `load` once, before the first lookup or registration (see the class docstring)."""
        self._load = load

    def _load_builtins(self) -> None:
        if self._load is not None:
            load, self._load = self._load, None
            load()

    def _loaded(self) -> dict[str, T]:
        self._load_builtins()
        from .plugins import load_installed_plugins  # entry-point plugins register before any lookup

        load_installed_plugins()
        return self._items

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register `obj` under `name`; usable as `@registry.register("name")`. A name registered
        twice (by vaebench or by plugins) is an error."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"{self.kind} name must match {_NAME.pattern}, got {name!r}")
        self._load_builtins()  # the built-ins first, so a plugin cannot take their names
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")

        def _add(o: T) -> T:
            if self._check is not None:
                self._check(name, o)
            self._items[name] = o
            from .plugins import note_registration  # counted as the plugin's being imported, if any

            note_registration(self.kind, name)
            return o

        return _add(obj) if obj is not None else _add

    def get(self, name: str) -> T:
        try:
            return self._loaded()[name]
        except KeyError:
            raise RegistryError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        """The unknown-name error, naming any plugin this process imported that registered nothing."""
        from .plugins import empty_plugins_note

        return unknown_name(self.kind, name, sorted(self._loaded())) + empty_plugins_note()

    def unregister(self, name: str) -> T:
        """Remove an entry (tests, notebooks re-running a cell); returns it."""
        return self._items.pop(name)

    def names(self) -> list[str]:
        return sorted(self._loaded())

    def __contains__(self, name: object) -> bool:
        return name in self._loaded()

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._loaded()))
