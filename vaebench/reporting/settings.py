"""What a study's runs were set to, for the report's settings sentences: every parameter the runs
share, as resolved (and which of them differ from vaebench's defaults), and for a grid of named
variants what each variant changes. Also which rows the sweep itself made (rows added with `vaebench.add_result` are not) and
which runs finished."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..results.rows import PARAM_PREFIX

EXTERNAL_COMMAND = "vaebench.add_result (Python)"  # the `command` of rows added from outside a sweep


def external_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows added from outside the sweep (`vaebench.add_result`)."""
    return df[df["command"] == EXTERNAL_COMMAND] if "command" in df else df.iloc[:0]


def sweep_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows the study's own runs made: without the rows added with `add_result` (unless every
    row was)."""
    external = external_rows(df)
    if len(external) and len(external) < len(df):
        return df.drop(index=external.index)
    return df


def finished(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of finished runs (status "ok"): the ones the tables summarize."""
    return df[df["status"] == "ok"]


def has_values(df: pd.DataFrame, key: str) -> bool:
    """Whether some finished run has a value in the column (a column the rows lack has none)."""
    ok = finished(df)
    return key in ok and bool(ok[key].notna().any())


def _defaults(row=None) -> dict[str, object]:
    """vaebench's default of every parameter; for the family sections (model, dataset) the defaults
    of the family `row` names (of the default family when no row is given). An option the family
    does not have is absent (its column is null in that row)."""
    from ..options import FamilySection
    from ..spec.sweep_spec import SECTIONS, RunConfig

    out = {k: hashable(v) for k, v in RunConfig().flat().items()}
    for section in SECTIONS:
        model = RunConfig.model_fields[section].annotation
        name = None if row is None else row.get(f"{PARAM_PREFIX}{section}.name")
        if not issubclass(model, FamilySection) or not isinstance(name, str) or name not in model._family_registry():
            continue
        out = {
            k: v
            for k, v in out.items()
            if not k.startswith(f"{section}.") or k[len(section) + 1 :] in model.model_fields
        }
        for field, info in model.options_model(name).model_fields.items():
            if not info.is_required():
                out[f"{section}.{field}"] = hashable(info.get_default(call_default_factory=True))
    from ..metrics import METRICS

    for metric in METRICS.names():  # the options of metrics that declare some: param.eval.<metric>.<option>
        if (options := METRICS.get(metric).options) is not None:
            out.update({f"eval.{metric}.{k}": hashable(v) for k, v in options().model_dump(mode="json").items()})
    return out


def fixed_settings(df: pd.DataFrame, grid_keys: list[str]) -> tuple[dict[str, object], set[str]]:
    """(settings, set_by_spec): every parameter the study's runs share (not in the grid), as the runs
    resolved it, in the rows' column order; and the ones whose value differs from vaebench's default
    (what the spec set). A parameter that is null in every row and not an option of the row's family
    is left out."""
    defaults, out, changed = _defaults(df.iloc[0] if len(df) else None), {}, set()
    for col in df.columns:
        key = param_key(col)
        if not col.startswith(PARAM_PREFIX) or key in grid_keys:
            continue
        values = {hashable(v) for v in df[col]}
        if len(values) != 1:
            continue
        value = values.pop()
        if value is None and key not in defaults:  # not an option of this family
            continue
        out[key] = value
        if value != defaults.get(key):
            changed.add(key)
    return out, changed


def _first_of_each_variant(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values("cell_index").drop_duplicates("variant")


def varying_columns(df: pd.DataFrame) -> list[str]:
    """For a study with grid.variant: the `param.*` columns whose values differ between variants."""
    first = _first_of_each_variant(df)
    return [c for c in df.columns if c.startswith(PARAM_PREFIX) and len({hashable(v) for v in first[c]}) > 1]


def param_key(column: str) -> str:
    """The parameter a `param.*` column holds: "param.model.name" -> "model.name"."""
    return column[len(PARAM_PREFIX) :]


def variant_settings(df: pd.DataFrame) -> dict[str, dict[str, object]]:
    """For a study with grid.variant: each variant's non-default values of the parameters that
    differ between variants, in grid order."""
    varying = varying_columns(df)
    out = {}
    for _, r in _first_of_each_variant(df).iterrows():
        defaults = _defaults(r)
        values = {param_key(c): hashable(r[c]) for c in varying}
        out[r["variant"]] = {
            k: v
            for k, v in values.items()
            if v != defaults.get(k) and not (v is None and k not in defaults)  # None: not an option of this family
        }
    return out


def hashable(v):
    """A comparable form of a parameter value: arrays and lists as tuples, mappings (a struct
    parameter, e.g. train.early_stopping) as sorted tuples of items, NaN as None."""
    if isinstance(v, dict):
        return tuple(sorted((k, hashable(x)) for k, x in v.items()))
    if hasattr(v, "tolist") and not np.isscalar(v) or isinstance(v, list):
        return tuple(v.tolist() if hasattr(v, "tolist") else v)
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    return v.item() if hasattr(v, "item") else v
