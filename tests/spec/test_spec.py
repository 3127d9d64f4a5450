import copy

import pytest

from tests.conftest import REPO, TINY_SPEC
from vaebench.errors import SpecError
from vaebench.spec.sweep_spec import Run, load_spec


def test_tiny_spec_expands_into_cells_times_seeds(write_spec):
    spec = load_spec(write_spec(TINY_SPEC))
    runs = spec.runs()
    assert len(runs) == 4
    assert [r.config.objective.beta for r in runs] == [0.5, 0.5, 2.0, 2.0]
    assert len({r.run_id for r in runs}) == 4
    # identity is stable: the same config and seed give the same id
    assert Run(runs[0].config, runs[0].seed).run_id == runs[0].run_id


def test_integer_grid_values_are_validated_into_the_field_type(write_spec):
    spec = load_spec(write_spec({**TINY_SPEC, "grid": {"objective.beta": [1, 4]}}))
    assert [c.objective.beta for c in spec.cells()] == [1.0, 4.0]
    assert all(isinstance(c.objective.beta, float) for c in spec.cells())


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "sweeps").glob("*.yaml")))
def test_shipped_sweeps_are_valid(name):
    spec = load_spec(REPO / "sweeps" / name)
    assert spec.runs() or (spec.search.sampled and spec.search.n_trials >= 1)


def test_beta_sweep_is_the_tutorials():
    spec = load_spec(REPO / "sweeps" / "beta.yaml")
    assert spec.grid == {"objective.beta": [0.1, 0.5, 1, 4, 10]}
    assert spec.seeds == [0, 1, 2] and spec.dataset.name == "mnist"
    assert (spec.model.hidden_dim, spec.model.latent_dim, spec.model.depth) == (256, 32, 2)


def _mutated(path_value):
    spec = copy.deepcopy(TINY_SPEC)
    for dotted, value in path_value.items():
        *parents, last = dotted.split(".")
        node = spec
        for p in parents:
            node = node.setdefault(p, {})
        if value is DELETE:
            del node[last]
        else:
            node[last] = value
    return spec


DELETE = object()

# (mutation, text the error must contain: the field and what is wrong)
BAD_SPECS = [
    ({"colour": "red"}, "field colour: unknown key"),
    ({"model.width": 3}, "field model.width: unknown key"),
    ({"train.epochs": "ten"}, "field train.epochs"),
    ({"train.epochs": 0}, "field train.epochs: Input should be greater than or equal to 1"),
    ({"objective.beta": -1.0}, "field objective.beta: Input should be greater than or equal to 0"),
    ({"model.latent_dim": 0}, "field model.latent_dim: Input should be greater than or equal to 1"),
    ({"train.lr": 0}, "field train.lr: Input should be greater than 0"),
    ({"dataset.name": "mnsit"}, "field dataset.name: unknown dataset 'mnsit'. Did you mean 'mnist'?"),
    ({"model.name": "transformer"}, "field model.name: unknown model 'transformer'"),
    ({"objective.likelihood": "poisson"}, "field objective.likelihood: unknown likelihood 'poisson'"),
    ({"grid": {"objective.gamma": [1]}}, "field grid: grid key 'objective.gamma': objective has no field 'gamma'"),
    ({"grid": {"optimizer.lr": [1]}}, "grid key 'optimizer.lr' must be SECTION.FIELD"),
    ({"grid": {"model": [{"name": "conv"}]}}, "grid key 'model' must be SECTION.FIELD with SECTION in"),
    ({"grid": {"variant": [{"model": {}}]}}, "grid.variant[0] must be a mapping with a non-empty string 'name'"),
    ({"grid": {"variant": [{"name": "a", "modle": {}}]}}, "grid.variant[0] (a): unknown section 'modle'"),
    (
        {"grid": {"variant": [{"name": "a"}, {"name": "a", "train": {"lr": 0.1}}]}},
        "grid.variant names must be distinct",
    ),
    ({"grid": {"variant": [{"name": "a"}, {"name": "b", "train": {"lr": 0.001}}]}}, "are the same configuration"),
    (
        {"grid": {"variant": [{"name": "c", "model": {"name": "conv", "hidden_dim": 64}}]}},
        "grid cell {'variant': 'c'}: model.hidden_dim = 64: unknown key: 'hidden_dim' is not an option of model 'conv' (an option of model 'cvae', 'mlp'",
    ),
    (
        {"model": {"name": "conv", "depth": 3}},
        "field model.depth: unknown key: 'depth' is not an option of model 'conv'",
    ),
    (
        {"model": {"name": "mlp", "hiden_dim": 3}},
        "field model.hiden_dim: unknown key: 'hiden_dim' is not an option of model 'mlp'. Did you mean 'hidden_dim'?",
    ),
    ({"model": {"name": "conv", "channels": [8, 0]}}, "field model.channels: channels must be >= 1"),
    ({"schedule": {"name": "linear", "cycles": 3}}, "field schedule: 'cycles' is not used by schedule 'linear'"),
    ({"objective": {"estimator": "iwae", "beta": 2}}, "estimator 'iwae' is the unweighted bound"),
    (
        {"objective": {"estimator": "iwae"}, "schedule": {"name": "linear"}},
        "estimator 'iwae' has no KL weight to schedule",
    ),
    ({"train": {"plateau_patience": 3}}, "'plateau_patience' is not used by lr_schedule 'none'"),
    ({"grid": {"objective.beta": []}}, "grid key 'objective.beta' has no values"),
    ({"grid": {"objective.beta": [1, 1]}}, "repeats a value"),
    (
        {"grid": {"objective.beta": [1, -2]}},
        "field grid: grid cell {'objective.beta': -2}: objective.beta = -2: Input should be greater than or equal to 0",
    ),
    ({"grid": {"model.latent_dim": [0]}}, "field grid: grid cell {'model.latent_dim': 0}: model.latent_dim = 0"),
    ({"seeds": []}, "field seeds: needs at least one seed"),
    ({"seeds": [1, 1]}, "seeds must be distinct"),
    ({"seeds": [-1]}, "seeds must be >= 0"),
    ({"study": DELETE}, "field study: Field required"),
    ({"study": "../escape"}, "field study: must match"),
    (
        {"dataset": {"name": "mnist", "image_size": 64}},
        "field dataset.image_size: unknown key: 'image_size' is not an option of dataset 'mnist' (an option of dataset",
    ),
    (
        {"dataset": {"name": "digits", "orientations": 40}},
        "field dataset.orientations: unknown key: 'orientations' is not an option of dataset 'digits'",
    ),
    (
        {"dataset": {"name": "shapes", "scale": 4}},
        "field dataset.scale: unknown key: 'scale' is not an option of dataset 'shapes'. Did you mean 'scales'?",
    ),
    (
        {"dataset": {"name": "shapes", "image_size": 8}},
        "field dataset.image_size: Input should be greater than or equal to 16",
    ),
    ({"dataset": {"name": "shapes", "test_fraction": 1.0}}, "field dataset.test_fraction: Input should be less than 1"),
    (
        {"grid": {"variant": [{"name": "m", "dataset": {"positions": 8}}]}},
        "grid cell {'variant': 'm'}: dataset.positions = 8: unknown key: 'positions' is not an option of dataset 'digits'",
    ),
]


@pytest.mark.parametrize("mutation,expected", BAD_SPECS)
def test_every_bad_field_is_named_with_the_file(write_spec, mutation, expected):
    path = write_spec(_mutated(mutation))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert message.startswith(f"{path}: invalid sweep spec")
    assert expected in message, message
    assert info.value.exit_code == 2


@pytest.mark.parametrize(
    "text,expected",
    [
        ("study: a\nseeds: [0\n", "not valid YAML"),
        ("study: a\nstudy: b\n", "duplicate key 'study'"),
        ("- just\n- a list\n", "must be a YAML mapping, got list"),
        ("", "must be a YAML mapping, got NoneType"),
    ],
)
def test_malformed_yaml_names_the_file(write_spec, text, expected):
    path = write_spec(text)
    with pytest.raises(SpecError, match=expected) as info:
        load_spec(path)
    assert str(path) in str(info.value)


def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="cannot read sweep spec"):
        load_spec(tmp_path / "nope.yaml")


def test_fingerprint_ignores_description_only(write_spec):
    a = load_spec(write_spec(TINY_SPEC, "a.yaml"))
    b = load_spec(write_spec({**TINY_SPEC, "description": "other words"}, "b.yaml"))
    c = load_spec(write_spec({**TINY_SPEC, "seeds": [0, 1, 2]}, "c.yaml"))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_dataset_parameters_are_shapes_only_and_leave_existing_ids_unchanged(write_spec):
    shapes = {
        **TINY_SPEC,
        "dataset": {"name": "shapes", "image_size": 64, "scales": 6, "orientations": 40, "positions": 32},
    }
    spec = load_spec(write_spec(shapes))  # the full dSprites grid is a valid configuration
    assert (spec.dataset.image_size, spec.dataset.orientations, spec.dataset.positions) == (64, 40, 32)
    assert spec.runs()[0].config.identity()["dataset"] == {
        "name": "shapes",
        "image_size": 64,
        "orientations": 40,
        "positions": 32,
    }
    # fields added with defaults are not part of any identity: run ids of other datasets are unchanged
    tiny = load_spec(write_spec(TINY_SPEC, "tiny.yaml"))
    assert tiny.runs()[0].config.identity()["dataset"] == {"name": "digits"}
    assert "eval" not in tiny.runs()[0].config.identity()


def test_search_targets_keep_the_yaml_key_objectives():
    """In code the search's metrics are `targets` (the `objective:` section is the loss); the spec
    key stays `search.objectives`: given, serialized and fingerprinted under that name."""
    from vaebench.spec.sweep_spec import SearchTarget, parse_spec

    given = [{"metric": "recon_mse"}, {"metric": "kl", "direction": "maximize"}]
    spec = parse_spec({**TINY_SPEC, "search": {"objectives": given}})
    assert spec.search.targets == [SearchTarget(metric="recon_mse"), SearchTarget(metric="kl", direction="maximize")]
    assert spec.search.metrics == ["recon_mse", "kl"] and spec.search.directions == ["minimize", "maximize"]
    dumped = spec.model_dump(mode="json", exclude_defaults=True)["search"]
    assert dumped == {"objectives": given[:1] + [{"metric": "kl", "direction": "maximize"}]}
    assert list(spec.model_dump()["search"]) == [
        "sampler",
        "n_trials",
        "seed",
        "space",
        "objectives",
        "pruner",
        "allow_test_selection",
    ]
    assert parse_spec(spec.model_dump()).fingerprint() == spec.fingerprint()  # a stored spec reloads
    with pytest.raises(SpecError, match=r"field search\.targets: unknown key"):
        parse_spec({**TINY_SPEC, "search": {"targets": given}})


def test_metric_spec_is_a_deprecated_alias_of_metric_declaration():
    from vaebench.metrics import METRICS, MetricDeclaration, MetricSpec

    assert MetricSpec is MetricDeclaration and isinstance(METRICS.get("fid"), MetricDeclaration)
