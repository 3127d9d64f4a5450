"""The codec between a Run and an Optuna trial (sweep/trials.py): what `encode_run` writes,
`decode_run` reads back as the same run, through a real (in-memory) Optuna storage."""

import json

import optuna

from tests.conftest import TINY_SPEC
from vaebench.spec.sweep_spec import parse_spec
from vaebench.sweep.trials import ATTR_RUN_ID, decode_run, encode_run, has_run

SPEC = parse_spec(
    {
        **TINY_SPEC,
        "grid": {
            "objective.beta": [0.5, 2.0],
            "variant": [{"name": "small", "model": {"hidden_dim": 16}}, {"name": "wide", "model": {"hidden_dim": 64}}],
        },
    }
)


def test_a_run_survives_its_trial_attributes():
    runs = SPEC.runs()
    assert len(runs) == 8
    study = optuna.create_study(storage=optuna.storages.InMemoryStorage())
    for run in runs:
        attrs = encode_run(run)
        json.dumps(attrs)  # plain JSON: what every storage keeps
        assert has_run(attrs) and attrs[ATTR_RUN_ID] == run.run_id
        study.enqueue_trial(params=dict(run.labels), user_attrs=attrs)
    for run, trial in zip(runs, study.get_trials()):
        back = decode_run(trial.user_attrs)
        assert back == run and back.run_id == run.run_id
        assert (back.labels, back.cell_index, back.variant) == (run.labels, run.cell_index, run.variant)
    assert len({decode_run(t.user_attrs).run_id for t in study.get_trials()}) == 8
    assert not has_run({})  # a sampled trial before its draw
