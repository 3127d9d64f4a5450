"""The `pythae` family's options: the pythae model by name, its config keys, the networks.

`config` is given as a mapping in a spec (`config: {beta: 6, alpha: 1}`) and kept as its canonical
JSON text (sorted keys): vaebench's options become `param.*` result columns, which hold scalars, and
a run id must not depend on the order the keys were written in. The keys are validated here, when
the spec is, against pythae's own config class of the model: an unknown key names the key, the
closest valid one and all of them; a bad value repeats pydantic's message for that key.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from vaebench import Options
from vaebench.registry import did_you_mean

from .zoo import SET_BY_VAEBENCH, SUPPORTED, ZOO

NETWORKS = ("default", "mnist_conv", "mnist_resnet")


class PythaeOptions(Options):
    model: str = Field("VAE", description=f"the pythae model class, by its pythae name: {', '.join(SUPPORTED)}")
    config: str = Field(
        "{}",
        description="keys of the pythae model's config class (e.g. {beta: 6, alpha: 1} for BetaTCVAE), "
        "kept as canonical JSON; input_dim and latent_dim come from the dataset and the spec",
    )
    networks: Literal["default", "mnist_conv", "mnist_resnet"] = Field(
        "default",
        description="default: pythae's MLPs (512 hidden units); mnist_conv / mnist_resnet: the networks of "
        "pythae's MNIST benchmark (pythae.models.nn.benchmarks.mnist; 1x28x28 images only)",
    )

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        entry = ZOO.get(name)
        if entry is None:
            raise ValueError(
                f"{name!r} is not a pythae model the adapter knows.{did_you_mean(name, list(ZOO))} "
                f"Supported: {', '.join(SUPPORTED)}"
            )
        if entry.refused:
            raise ValueError(f"pythae model {name!r} is not supported: {entry.refused}")
        return name

    @field_validator("config", mode="before")
    @classmethod
    def _canonical_json(cls, value: Any) -> str:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError as e:
                raise ValueError(f"config must be a mapping of pythae config keys, got the text {value!r} ({e})")
        if not isinstance(value, dict):
            raise ValueError(f"config must be a mapping of pythae config keys, got {value!r}")
        try:
            return json.dumps(value, sort_keys=True)
        except TypeError as e:
            raise ValueError(f"config values must be numbers, strings, booleans or lists: {e}") from None

    @model_validator(mode="after")
    def _config_keys_of_the_model(self) -> "PythaeOptions":
        keys = self.config_keys()
        pythae_config(self.model, keys)  # raises ValueError naming the key
        for key, (value, reason) in ZOO[self.model].refused_values.items():
            if keys.get(key) == value:
                raise ValueError(f"config key {key!r}: {value!r} is not supported for {self.model}: {reason}")
        return self

    def config_keys(self) -> dict[str, Any]:
        """`config` as a mapping."""
        return json.loads(self.config)


def config_class(model: str) -> type:
    import pythae.models

    return getattr(pythae.models, ZOO[model].config)


def pythae_config(model: str, keys: dict[str, Any], **set_by_vaebench: Any):
    """pythae's config object of `model` with the user's `keys` and vaebench's (`input_dim`,
    `latent_dim`, `reconstruction_loss`); ValueError naming the key that pythae's config refuses."""
    cls = config_class(model)
    valid = sorted(f.name for f in dataclasses.fields(cls) if f.init and f.name not in SET_BY_VAEBENCH)
    for key in keys:
        if key in SET_BY_VAEBENCH:
            raise ValueError(
                f"config key {key!r} is set by vaebench (input_dim from the dataset, latent_dim from "
                f"model.latent_dim, the networks from model.networks): remove it"
            )
        if key not in valid:
            raise ValueError(
                f"config key {key!r} is not an option of pythae's {cls.__name__}.{did_you_mean(key, valid)} "
                f"Valid: {', '.join(valid) or 'none'}"
            )
    try:
        return cls(**{**keys, **set_by_vaebench})
    except ValidationError as e:
        problems = "; ".join(
            f"config key {'.'.join(map(str, err['loc']))!r}: {err['msg']} (got {err.get('input')!r})"
            if err["loc"]
            else f"the config {keys}: {err['msg']}"  # a check of the whole config (pythae's __post_init__)
            for err in e.errors()
        )
        raise ValueError(f"pythae's {cls.__name__} refuses {problems}") from None
    except (TypeError, AssertionError) as e:
        raise ValueError(f"pythae's {cls.__name__} refuses the config {keys}: {e}") from None
