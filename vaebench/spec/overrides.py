"""Command-line overrides of a spec, Hydra style: `train.epochs=3 seeds=[0] 'grid.objective.beta=[1,4]'`.

An override is KEY=VALUE. The value is parsed as YAML (`3` an int, `[0, 1]` a list, `my_try` a
string, `null` None); the key is a dotted path into the spec's YAML mapping, and the value replaces
what is there (or adds it). The keys of `grid` and `search.space` are themselves SECTION.FIELD, so
`grid.objective.beta` sets the grid key `objective.beta` and `search.space.objective.beta.low` the
`low` of that space entry. Overrides are applied, in order, to the loaded mapping before validation:
the spec is then validated exactly as the file is, and an error in an overridden field says so
(`OverrideSource.annotate`).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Union

import yaml

from ..errors import SpecError

# mappings whose keys are SECTION.FIELD paths (`grid` also takes `variant`): a path step into them
# takes two segments at once
DOTTED_KEY_MAPPINGS = (("grid",), ("search", "space"))
SINGLE_SEGMENT_GRID_KEYS = ("variant",)

Overrides = Union[Iterable[str], Mapping[str, Any], None]


@dataclass(frozen=True)
class Override:
    """One override: the dotted key as given, its path into the mapping, the value, and the text
    (`key=value`) as the user wrote it."""

    key: str
    path: tuple[str, ...]
    value: Any
    text: str


def parse_overrides(overrides: Overrides, where: str = "command line") -> list[Override]:
    """KEY=VALUE strings (or a mapping key -> value, the Python API's form) as `Override`s; a string
    without `=`, an empty key or a value that is not YAML is a SpecError naming it."""
    if overrides is None:
        return []
    if isinstance(overrides, Mapping):
        items = [
            (str(k), v, f"{k}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}")
            for k, v in overrides.items()
        ]
    else:
        if isinstance(overrides, str):
            overrides = [overrides]
        items = []
        for text in overrides:
            key, eq, raw = str(text).partition("=")
            key = key.strip()
            if not eq or not key:
                raise SpecError(f"override {text!r} ({where}): expected KEY=VALUE, e.g. train.epochs=3")
            try:
                value = yaml.safe_load(raw) if raw.strip() else None
            except yaml.YAMLError as e:
                first = str(e).strip().splitlines()[0]
                raise SpecError(f"override {text!r} ({where}): the value is not valid YAML: {first}") from None
            items.append((key, value, str(text)))
    out = []
    for key, value, text in items:
        segments = tuple(key.split("."))
        if any(not s for s in segments):
            raise SpecError(f"override {text!r} ({where}): {key!r} is not a dotted key (an empty part)")
        out.append(Override(key, segments, value, text))
    return out


def _split_path(segments: tuple[str, ...]) -> list[str]:
    """The path's steps: a step into `grid` or `search.space` takes the SECTION.FIELD key whole."""
    steps: list[str] = []
    i = 0
    while i < len(segments):
        if tuple(steps) in DOTTED_KEY_MAPPINGS:
            width = 1 if tuple(steps) == ("grid",) and segments[i] in SINGLE_SEGMENT_GRID_KEYS else 2
            steps.append(".".join(segments[i : i + width]))
            i += width
        else:
            steps.append(segments[i])
            i += 1
    return steps


def apply_overrides(data: Any, overrides: list[Override], source: str) -> dict:
    """A deep copy of the spec mapping `data` with every override set, in order. A step through a
    value that is not a mapping is a SpecError naming the override and `source` (the spec file)."""
    if not overrides:
        return data
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a sweep spec must be a YAML mapping, got {type(data).__name__}")
    out = copy.deepcopy(data)
    for o in overrides:
        steps = _split_path(o.path)
        node = out
        for depth, step in enumerate(steps[:-1]):
            child = node.get(step)
            if child is None:
                child = node[step] = {}
            if not isinstance(child, dict):
                at = ".".join(steps[: depth + 1])
                raise SpecError(
                    f"{source}: override {o.text!r} (command line): {at} is {child!r}, not a mapping of keys"
                )
            node = child
        node[steps[-1]] = copy.deepcopy(o.value)
    return out


def annotate(loc: str, overrides: list[Override]) -> str:
    """' (set on the command line: KEY=VALUE)' when the field `loc` (dotted) is an overridden key,
    inside one or around one; else ''."""
    hits = [o.text for o in overrides if _related(loc, ".".join(_split_path(o.path)))]
    return f" (set on the command line: {', '.join(hits)})" if hits else ""


def _related(loc: str, key: str) -> bool:
    if not loc:
        return False
    return loc == key or key.startswith(loc + ".") or loc.startswith(key + ".")


def override_texts(overrides: Overrides) -> list[str]:
    """The overrides as the KEY=VALUE strings a row and the command line record."""
    return [o.text for o in parse_overrides(overrides)]
