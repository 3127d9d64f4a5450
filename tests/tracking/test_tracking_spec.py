"""The `tracking:` section and `--track`: validated like every section, outside the study's identity,
and a tracker that is not installed stops `vaebench run` / `vaebench worker` with exit 2 before
anything is written, naming the pip command of vaebench's extra."""

import sys

import pytest
from typer.testing import CliRunner

from tests.tracking.conftest import SPEC, write_spec
from vaebench.cli.commands import app
from vaebench.errors import SpecError
from vaebench.spec.sweep_spec import parse_spec
from vaebench.spec.tracking import TrackingConfig, with_track_uris

runner = CliRunner()


def test_unknown_and_missing_keys_are_errors_naming_the_key():
    with pytest.raises(SpecError, match=r"field tracking\.mlflow\.uri: unknown key"):
        parse_spec({**SPEC, "study": "s", "tracking": {"mlflow": {"uri": "sqlite:///x.db"}}})
    with pytest.raises(SpecError, match=r"field tracking\.wandb: unknown key"):
        parse_spec({**SPEC, "study": "s", "tracking": {"wandb": {}}})
    with pytest.raises(SpecError, match=r"field tracking\.tensorboard\.dir: Field required"):
        parse_spec({**SPEC, "study": "s", "tracking": {"tensorboard": {}}})


def test_tracking_changes_neither_the_fingerprint_nor_the_run_ids():
    plain = parse_spec({**SPEC, "study": "s"})
    tracked = parse_spec(
        {
            **SPEC,
            "study": "s",
            "tracking": {"mlflow": {"tracking_uri": "sqlite:///m.db", "experiment": "e"}, "tensorboard": {"dir": "tb"}},
        }
    )
    assert tracked.tracking.backends() == ["mlflow", "tensorboard"]
    assert tracked.fingerprint() == plain.fingerprint()
    assert [r.run_id for r in tracked.runs()] == [r.run_id for r in plain.runs()]
    other = parse_spec({**SPEC, "study": "s", "seeds": [0]})  # the check can fail: a real change does change it
    assert other.fingerprint() != plain.fingerprint()


def test_track_uris_pick_their_backend():
    base = TrackingConfig.model_validate({"mlflow": {"tracking_uri": "sqlite:///a.db", "experiment": "e"}})
    both = with_track_uris(base, ["tensorboard:runs/tb"])
    assert (both.mlflow.tracking_uri, both.tensorboard.dir) == ("sqlite:///a.db", "runs/tb")
    http = with_track_uris(base, ["http://127.0.0.1:5000"])
    assert (http.mlflow.tracking_uri, http.mlflow.experiment, http.tensorboard) == ("http://127.0.0.1:5000", None, None)
    assert with_track_uris(base, ["mlflow:file:///tmp/m"]).mlflow.tracking_uri == "file:///tmp/m"
    assert with_track_uris(base, ["none"]).backends() == []
    with pytest.raises(ValueError, match="--track tensorboard:: tensorboard.dir: must not be empty"):
        with_track_uris(base, ["tensorboard:"])


@pytest.mark.parametrize(
    "backend, module, extra", [("mlflow", "mlflow", "mlflow"), ("tensorboard", "tensorboard", "tensorboard")]
)
def test_a_tracker_not_installed_exits_2_before_anything_is_written(tmp_path, monkeypatch, backend, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` fails; find_spec finds nothing
    monkeypatch.chdir(tmp_path)
    settings = {"mlflow": {"tracking_uri": "sqlite:///m.db"}, "tensorboard": {"dir": "tb"}}[backend]
    _, path = write_spec(tmp_path, "absent", tracking={backend: settings})
    results = tmp_path / "results"
    r = runner.invoke(app, ["run", str(path), "--results", str(results)], catch_exceptions=False)
    assert r.exit_code == 2, r.output
    assert f"tracking.{backend} needs the '{module}' package" in r.output
    assert f"pip install 'vaebench[{extra}]'" in r.output
    assert not results.exists() and not (tmp_path / "m.db").exists() and not (tmp_path / "tb").exists()
    # the same through --track, on a spec without the section, and on `vaebench worker`
    _, plain = write_spec(tmp_path, "absent2")
    uri = "sqlite:///m.db" if backend == "mlflow" else "tensorboard:tb"
    r = runner.invoke(app, ["run", str(plain), "--track", uri, "--results", str(results)], catch_exceptions=False)
    assert r.exit_code == 2 and f"pip install 'vaebench[{extra}]'" in r.output, r.output
    assert not results.exists()
    r = runner.invoke(app, ["run", str(plain), "--workers", "0", "--results", str(results)], catch_exceptions=False)
    assert r.exit_code == 0, r.output  # the study exists, no tracker: now a worker asks for one
    r = runner.invoke(
        app, ["worker", "--study", "absent2", "--track", uri, "--results", str(results)], catch_exceptions=False
    )
    assert r.exit_code == 2 and f"pip install 'vaebench[{extra}]'" in r.output, r.output
    assert not list((results / "absent2").glob("runs/*.parquet"))
