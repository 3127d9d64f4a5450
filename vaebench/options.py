"""Families with options of their own: the one mechanism behind model families and datasets.

A *family* is a registry entry (a model architecture, a dataset source) together with a pydantic
`Options` model that declares and validates the options only it reads. In a spec, a family section
names the family and gives its options beside the section's common fields:

    model: {name: mlp, latent_dim: 32, hidden_dim: 512}     # name, latent_dim: common; hidden_dim: mlp's
    dataset: {name: image_folder, path: ./faces, image_size: 64}

`FamilySection` is the pydantic base of such a section. It validates the common fields, looks the
family up, validates the remaining keys with the family's `Options` (a typo or an option another
family reads is an error that names the field and suggests the closest valid name) and keeps them as
attributes of the section (`cfg.model.hidden_dim`). Serialized with `exclude_defaults` (run ids,
study fingerprints), an option at its family's default is left out, so adding an option with a
default changes no existing run id, and changing an option's value changes the run id.

Registering checks an entry with `check_entry` (every registry's `check`: models, datasets and
metrics alike): its type, its function, its name, and its options model (`check_options_model`).

Built-in families and user plugins register the same way, e.g.::

    class MyOptions(Options):
        width: int = Field(256, ge=1, description="hidden width")

    MODELS.register("my_vae", ModelFamily(build_my_vae, MyOptions))
"""

from __future__ import annotations

import typing
from typing import Any, Callable, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError, model_serializer, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from .registry import Registry, did_you_mean


class Options(BaseModel):
    """Base of a family's (or metric's) own options: unknown keys are errors, values validated on
    assignment, NaN and infinite floats refused. Give every field a default and a `description`
    (it is the spec reference)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class NoOptions(Options):
    """A family without options of its own."""


# Annotations an option may have: they map onto Parquet column types (results/rows.py).
_SCALARS = (int, float, bool, str)


def check_option_type(ann: Any, where: str) -> None:
    """Options become `param.*` result columns: allow int, float, bool, str, Literal, list[...] and
    Optional[...] of those; anything else is refused when the family registers."""
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if ann in _SCALARS:
        return
    if origin is typing.Literal and all(type(a) in _SCALARS for a in args):
        return
    if origin is list and len(args) == 1:
        return check_option_type(args[0], where)
    if origin is not None and type(None) in args and len(args) == 2:  # Optional[X]
        return check_option_type(next(a for a in args if a is not type(None)), where)
    raise ValueError(
        f"{where}: option type {ann!r} is not supported; use int, float, bool, str, Literal, "
        "list[...] or Optional[...] of them"
    )


def check_options_model(
    options: Any, where: str, common: tuple[str, ...] = (), defaults_required: bool = False
) -> None:
    """What registering an entry with options checks, for every registry (model families, dataset
    sources, metrics): a pydantic model class that forbids unknown keys (a misspelled option is an
    error), whose fields do not shadow the section's `common` fields and have supported types (they
    become `param.*` columns); with `defaults_required` (a metric's options: a spec may give none),
    a default for every field. Raises ValueError naming `where` ("model 'mlp'", "metric 'lpips'")."""
    if not (isinstance(options, type) and issubclass(options, BaseModel)):
        raise ValueError(
            f"{where}: options must be a pydantic model class (subclass vaebench.Options), got {options!r}"
        )
    if options.model_config.get("extra") != "forbid":
        raise ValueError(
            f"{where}: its options model {options.__name__} must forbid unknown keys (subclass "
            "vaebench.Options, or model_config = ConfigDict(extra='forbid')), so a misspelled option is an error"
        )
    if defaults_required:
        try:
            options()
        except Exception as e:  # noqa: BLE001 - a validator of the user's model may raise anything
            raise ValueError(
                f"{where}: every field of its options model {options.__name__} needs a default (the options "
                f"of a spec that gives none): {e}"
            ) from None
    for name, field in options.model_fields.items():
        if name in common:
            raise ValueError(f"{where}: option {name!r} shadows the section's common field of that name")
        check_option_type(field.annotation, f"{where}, option {name!r}")


def check_entry(
    kind: str,
    name: str,
    entry: Any,
    entry_type: type,
    function: str,
    how: str,
    common: tuple[str, ...] = (),
    defaults_required: bool = False,
    error: type[Exception] = ValueError,
) -> None:
    """What every registry checks when an entry registers (its `check`): `entry` is an `entry_type`
    (`how` says how to make one: "a vaebench.models.ModelFamily(build, options)"), its `function`
    attribute (build, load, compute) is callable, its `name` (if it has one) is the registered name,
    and its `options` model (if any) passes `check_options_model`. Raises `error`."""
    if not isinstance(entry, entry_type) or not callable(getattr(entry, function, None)):
        raise error(f"{kind} {name!r}: register {how}, got {entry!r}")
    if getattr(entry, "name", name) != name:
        raise error(f"{kind} {name!r}: its {entry_type.__name__} is named {entry.name!r}")
    if getattr(entry, "options", None) is not None:
        try:
            check_options_model(entry.options, f"{kind} {name!r}", common, defaults_required)
        except ValueError as e:
            raise error(str(e)) from None


class FamilySection(BaseModel):
    """A spec section whose `name` picks a family and whose other keys are that family's options.

    Subclasses declare the common fields and `registry_kind` / `_family_registry()`; the entries of
    that registry carry an `options` attribute (an `Options` subclass)."""

    model_config = ConfigDict(extra="allow", validate_assignment=True, allow_inf_nan=False)
    kind: ClassVar[str] = "family"  # "model", "dataset": used in messages

    @classmethod
    def _family_registry(cls) -> Registry:
        raise NotImplementedError

    @classmethod
    def options_model(cls, name: str) -> type[Options]:
        return cls._family_registry().get(name).options

    @classmethod
    def all_option_names(cls) -> dict[str, list[str]]:
        """option name -> the families that read it (for grid-key checks and suggestions)."""
        out: dict[str, list[str]] = {}
        registry = cls._family_registry()
        for family in registry:
            for opt in registry.get(family).options.model_fields:
                out.setdefault(opt, []).append(family)
        return out

    @model_validator(mode="wrap")
    @classmethod
    def _family_options(cls, data: Any, handler):
        if not isinstance(data, dict):
            return handler(data)
        common = {k: v for k, v in data.items() if k in cls.model_fields}
        given = {k: v for k, v in data.items() if k not in cls.model_fields}
        section = handler(common)  # the common fields (an unknown family name fails here)
        options = cls.options_model(section.name)
        try:
            values = options.model_validate(given)
        except ValidationError as e:
            readers = cls.all_option_names()  # an unknown key may be an option of another family

            def note(field: str) -> str:
                names = readers.get(field, [])
                return f" (an option of {cls.kind} {', '.join(map(repr, names))})" if names else ""

            raise ValidationError.from_exception_data(
                cls.__name__,
                option_errors(
                    e,
                    f"{cls.kind} {section.name!r}",
                    sorted({*cls.model_fields, *options.model_fields}),
                    "family_option",
                    note=note,
                ),
            ) from None
        section.__pydantic_extra__ = values.model_dump()
        return section

    @model_serializer(mode="wrap")
    def _drop_default_options(self, handler, info):
        out = handler(self)
        if info.exclude_defaults and self.__pydantic_extra__:
            fields = self.options_model(self.name).model_fields
            defaults = {k: f.get_default(call_default_factory=True) for k, f in fields.items()}
            out = {k: v for k, v in out.items() if k not in defaults or v != defaults[k]}
        return out

    def family_options(self) -> Options:
        """The family's validated options object (its fields as attributes)."""
        return self.options_model(self.name).model_validate(self.__pydantic_extra__ or {})


def option_error(error_type: str, loc: tuple, msg: str, value: Any) -> InitErrorDetails:
    """A pydantic error of `error_type` at `loc` whose message is `msg`, word for word."""
    return InitErrorDetails(type=PydanticCustomError(error_type, "{msg}", {"msg": msg}), loc=loc, input=value)


def option_errors(
    e: ValidationError,
    owner: str,
    valid: list[str],
    error_type: str,
    prefix: tuple = (),
    note: Callable[[str], str] = lambda field: "",
) -> list[InitErrorDetails]:
    """The errors of an `Options` model (a family's, a metric's), located under `prefix` in the spec
    section: an unknown key names `owner` ("model 'mlp'", "metric 'lpips'"), `note(key)`, the closest
    of the `valid` keys and all of them; any other error keeps its message (without pydantic's
    "Value error, " prefix), as an `error_type` error."""
    out = []
    for err in e.errors():
        loc = (*prefix, *err["loc"])
        if err["type"] == "extra_forbidden":
            field = str(err["loc"][0]) if err["loc"] else ""
            out.append(
                option_error(
                    "unknown_option",
                    loc,
                    f"unknown key: {field!r} is not an option of {owner}"
                    f"{note(field)}.{did_you_mean(field, valid)} Valid: {', '.join(valid) or 'none'}",
                    err.get("input"),
                )
            )
        else:
            out.append(option_error(error_type, loc, err["msg"].removeprefix("Value error, "), err.get("input")))
    return out
