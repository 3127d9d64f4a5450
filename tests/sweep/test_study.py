"""The study (sweep/study.py) on Optuna's in-memory storage: creating and resuming it, claiming its
trials, its status, and parsing its stored spec once."""

from tests.conftest import TINY_SPEC
from vaebench.spec import sweep_spec
from vaebench.spec.sweep_spec import parse_spec
from vaebench.sweep import study as study_mod
from vaebench.sweep.study import open_study, stored_spec, study_status

SPEC = parse_spec(TINY_SPEC)


def test_the_stored_spec_is_parsed_once_per_process(memory_store, monkeypatch):
    store = memory_store("tiny")
    study = open_study(SPEC, store)
    calls = []
    real = sweep_spec.parse_spec

    def counting(data, where):
        calls.append(where)
        return real(data, where)

    monkeypatch.setattr(study_mod, "parse_spec", counting)
    monkeypatch.setattr(study_mod, "_PARSED", {})
    for _ in range(5):  # the status poll, every 2 s
        assert study_status(study).total == 4
    assert stored_spec(store) == SPEC  # the worker's read of the same stored text
    assert len(calls) == 1
    other = parse_spec({**TINY_SPEC, "study": "other", "seeds": [0]})
    assert study_status(open_study(other, memory_store("other"))).total == 2  # another study: its own entry
    assert len(calls) == 2
