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


class Registry(Generic[T]):
    """`load`, when given, is called once before the first lookup: it imports the modules that fill
    the registry, so that a process that never looks an entry up never pays for their imports."""

    def __init__(self, kind: str, load: Callable[[], None] | None = None) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._load = load

    def _loaded(self) -> dict[str, T]:
        if self._load is not None:
            load, self._load = self._load, None
            load()
        return self._items

    def register(self, name: str, obj: T | None = None) -> Callable[[T], T] | T:
        """Register `obj` under `name`; usable as `@registry.register("name")`."""
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"{self.kind} name must match {_NAME.pattern}, got {name!r}")
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")

        def _add(o: T) -> T:
            self._items[name] = o
            return o

        return _add(obj) if obj is not None else _add

    def get(self, name: str) -> T:
        try:
            return self._loaded()[name]
        except KeyError:
            raise RegistryError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), self._loaded(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r}.{hint} Available: {', '.join(sorted(self._items))}"

    def names(self) -> list[str]:
        return sorted(self._loaded())

    def __contains__(self, name: object) -> bool:
        return name in self._loaded()

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._loaded()))
