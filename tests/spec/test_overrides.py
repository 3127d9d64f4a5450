"""Command-line overrides of a spec (spec/overrides.py), what a grown spec is (SweepSpec.growth_problems)
and the Optuna distributions of grid keys (spec/samplers.grid_distribution)."""

import copy

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from tests.conftest import TINY_SPEC
from vaebench.errors import SpecError
from vaebench.spec.samplers import grid_distribution
from vaebench.spec.sweep_spec import load_spec, parse_spec


def test_overrides_equal_the_edited_file(write_spec):
    path = write_spec(TINY_SPEC)
    spec = load_spec(path, ["train.epochs=3", "seeds=[0]", "grid.objective.beta=[1,4]", "study=my_try"])
    edited = copy.deepcopy(TINY_SPEC)
    edited["train"]["epochs"], edited["seeds"], edited["grid"] = 3, [0], {"objective.beta": [1, 4]}
    edited["study"] = "my_try"
    assert spec.train.epochs == 3 and spec.seeds == [0] and spec.grid == {"objective.beta": [1, 4]}
    assert spec.study == "my_try" and spec.train.batch_size == 128  # the rest of the section is kept
    assert spec.fingerprint() == load_spec(write_spec(edited, "edited.yaml")).fingerprint()
    assert spec.fingerprint() != load_spec(path).fingerprint()  # overrides change the study's identity
    assert load_spec(path, ["train.epochs=2"]).fingerprint() == load_spec(path).fingerprint()  # a no-op does not


def test_later_overrides_win_and_a_mapping_is_taken_too(write_spec):
    path = write_spec(TINY_SPEC)
    assert load_spec(path, ["train.epochs=3", "train.epochs=5"]).train.epochs == 5
    variants = [{"name": "a"}, {"name": "b", "train": {"lr": 0.1}}]
    spec = parse_spec(TINY_SPEC, "mapping", {"train.lr": 0.01, "grid.variant": variants})
    assert spec.train.lr == 0.01 and spec.grid["variant"] == variants
    assert "variant" not in TINY_SPEC["grid"]  # the caller's mapping is not changed


def test_a_search_space_key_is_one_step(write_spec):
    spec = {
        **TINY_SPEC,
        "grid": {},
        "seeds": [0],
        "search": {
            "sampler": "random",
            "allow_test_selection": True,
            "n_trials": 4,
            "space": {"objective.beta": {"type": "float", "low": 0.1, "high": 10, "log": True}},
        },
    }
    s = load_spec(write_spec(spec), ["search.space.objective.beta.high=20", "search.n_trials=2"])
    assert s.search.space["objective.beta"].high == 20 and s.search.n_trials == 2


@pytest.mark.parametrize(
    "override,expected",
    [
        ("train.epochz=3", "field train.epochz: unknown key (set on the command line: train.epochz=3)"),
        (
            "train.epochs=-3",
            "field train.epochs: Input should be greater than or equal to 1 (got -3) (set on the command line: train.epochs=-3)",
        ),
        ("grid.objective.betta=[1]", "objective has no field 'betta'. Did you mean 'beta'?"),
        ("seeds=[0,0]", "field seeds: seeds must be distinct (got [0, 0]) (set on the command line: seeds=[0,0])"),
        ("study=a/b", "field study: must match"),
        ("train.epochs.x=3", "override 'train.epochs.x=3' (command line): train.epochs is 2, not a mapping of keys"),
        ("seeds=[0", "override 'seeds=[0' (command line): the value is not valid YAML"),
        ("epochs", "override 'epochs' (command line): expected KEY=VALUE"),
        ("train..epochs=3", "is not a dotted key"),
    ],
)
def test_a_bad_override_is_a_spec_error_naming_it(write_spec, override, expected):
    with pytest.raises(SpecError) as e:
        load_spec(write_spec(TINY_SPEC), [override])
    assert expected in str(e.value)
    if override.startswith("grid."):
        assert "(set on the command line: grid.objective.betta=[1])" in str(e.value)


def test_an_error_of_the_file_itself_is_not_blamed_on_the_command_line(write_spec):
    with pytest.raises(SpecError) as e:
        load_spec(write_spec({**TINY_SPEC, "extra": 1}), ["train.epochs=3"])
    assert "field extra: unknown key\n" in str(e.value) + "\n" and "command line" not in str(e.value)


def test_growth_is_more_grid_values_and_seeds_and_nothing_else():
    old = parse_spec(TINY_SPEC)
    assert parse_spec(TINY_SPEC, overrides=["seeds=[0,1,2]"]).growth_problems(old) == []
    assert parse_spec(TINY_SPEC, overrides=["grid.objective.beta=[0.5,2.0,8]"]).growth_problems(old) == []
    assert parse_spec(TINY_SPEC, overrides=["description=new words"]).growth_problems(old) == []
    assert parse_spec(TINY_SPEC, overrides=["train.epochs=3"]).growth_problems(old) == [
        "fixed setting train.epochs: 2 -> 3"
    ]
    assert parse_spec(TINY_SPEC, overrides=["seeds=[1]"]).growth_problems(old) == ["seeds: removed [0]"]
    assert parse_spec(TINY_SPEC, overrides=["grid.objective.beta=[0.5]"]).growth_problems(old) == [
        "grid objective.beta: removed or changed [2.0]"
    ]
    other_key = parse_spec(TINY_SPEC, overrides=["grid={model.latent_dim: [4, 8]}"])
    assert other_key.growth_problems(old) == ['fixed setting grid_keys: ["objective.beta"] -> ["model.latent_dim"]']
    # a grown spec keeps every run (same run ids) and adds the new ones
    grown = parse_spec(TINY_SPEC, overrides=["seeds=[0,1,2]", "grid.objective.beta=[0.5,2.0,8]"])
    assert {r.run_id for r in old.runs()} < {r.run_id for r in grown.runs()} and len(grown.runs()) == 9


def test_grid_values_get_numeric_distributions():
    assert grid_distribution([0.5, 4]) == FloatDistribution(0.5, 4.0, log=False)
    assert grid_distribution([0.1, 0.5, 1, 4, 10]) == FloatDistribution(0.1, 10.0, log=True)  # 100x span
    assert grid_distribution([16, 32, 64, 256]) == IntDistribution(16, 256, log=True)
    assert grid_distribution([1, 2, 3]) == IntDistribution(1, 3, log=False)
    assert grid_distribution([0, 1, 100]) == IntDistribution(0, 100, log=False)  # 0: no log axis
    assert grid_distribution(["mlp", "conv"]) == CategoricalDistribution(["mlp", "conv"])
    assert grid_distribution([True, False]) == CategoricalDistribution([True, False])  # bools stay choices
    assert grid_distribution([1, "a"]) == CategoricalDistribution([1, "a"])


def test_a_pinned_distribution_keeps_its_kind_and_scale_and_widens():
    pinned = FloatDistribution(0.5, 4.0, log=False)
    assert grid_distribution([0.5, 4, 80], pinned) == FloatDistribution(0.5, 80.0, log=False)  # not log now
    assert grid_distribution([1, 2, 3], pinned) == FloatDistribution(0.5, 4.0, log=False)  # ints on a float axis
    assert grid_distribution([-1.0], FloatDistribution(0.1, 10.0, log=True)) is None  # <= 0 on a log axis
    assert grid_distribution([2, 64], IntDistribution(16, 32, log=True)) == IntDistribution(2, 64, log=True)
    assert grid_distribution([16, 0.5], IntDistribution(16, 32)) is None  # a float on an int axis
    old = CategoricalDistribution([0.5, 4])  # a study made before grid keys were numeric
    assert grid_distribution([0.5, 4], old) == old
    assert grid_distribution([0.5, 4, 8], old) is None  # Optuna's categorical choices cannot grow


@pytest.mark.parametrize("values", [[0.5, 4], [0.1, 1, 10], [16, 32, 256], [0, 3], ["a", "b"]])
def test_enqueued_grid_values_are_recorded_exactly_under_their_distribution(values):
    """What the worker does: enqueue each value as a fixed param, suggest it under the distribution;
    the recorded param is the value, with no out-of-range warning, on a storage that checks the
    distributions of a name against each other."""
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    dist = grid_distribution(values)
    for v in values:
        study.enqueue_trial({"k": v})
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Fixed parameter ... is out of the range" would fail here
        for v in values:
            trial = study.ask()
            from vaebench.spec.samplers import suggest_distribution

            assert suggest_distribution(trial, "k", dist) == v
            study.tell(trial, 1.0)
    assert [t.params["k"] for t in study.trials] == values
    assert {type(t.distributions["k"]) for t in study.trials} == {type(dist)}


def test_print_spec_output_is_a_spec_with_the_same_identity(write_spec):
    spec = load_spec(write_spec(TINY_SPEC), ["train.epochs=3"])
    again = parse_spec(yaml.safe_load(yaml.safe_dump(spec.model_dump(mode="json"))))
    assert again.fingerprint() == spec.fingerprint()
