"""TensorBoard: one event-file folder per run, read back with TensorBoard's own EventAccumulator: the
per-epoch scalars at step = epoch, the row's final scalars, and the hparams plugin data (the swept
values against the final metrics) that the HParams tab compares cells with."""

import pytest

pytest.importorskip("tensorboard")  # CI installs the extra (.ci/run checks the import): never skipped there

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402

from tests.tracking.conftest import rows, vaebench, write_spec  # noqa: E402

pytestmark = pytest.mark.slow


def test_each_run_has_its_event_files_with_epochs_final_metrics_and_hparams(tmp_path):
    spec, path = write_spec(tmp_path, "tb_study", seeds=[0])
    results = tmp_path / "results"
    p = vaebench("run", path, "--track", "tensorboard:tb", "--results", results, cwd=tmp_path)  # relative: cwd
    assert p.returncode == 0, p.stdout
    got = rows(results, spec.study)
    assert sorted(p.name for p in (tmp_path / "tb" / spec.study).iterdir()) == sorted(got)
    for run in spec.runs():
        row = got[run.run_id]
        assert row["tracking_error"] is None
        acc = EventAccumulator(str(tmp_path / "tb" / spec.study / run.run_id))
        acc.Reload()
        scalars = acc.Tags()["scalars"]
        for key in ("train_loss", "test_loss", "kl_weight"):
            events = acc.Scalars(f"epoch/{key}")
            assert [(e.step, e.value) for e in events] == [
                (e["epoch"], pytest.approx(e[key], rel=1e-6)) for e in row["history"]
            ]
        for column in ("neg_elbo", "recon_mse", "active_units", "n_params"):
            (event,) = acc.Scalars(f"final/{column}")
            assert (event.step, event.value) == (3, pytest.approx(row[column], rel=1e-6))
        assert "final/fid" not in scalars  # FID without its classifier: null, left out

        content = acc.PluginTagToContent("hparams")
        data = {tag: plugin_data_pb2.HParamsPluginData.FromString(raw) for tag, raw in content.items()}
        experiment = next(d.experiment for d in data.values() if d.HasField("experiment"))
        assert {h.name for h in experiment.hparam_infos} == {"objective.beta", "seed"}
        assert "final/neg_elbo" in {m.name.tag for m in experiment.metric_infos}
        start = next(d.session_start_info for d in data.values() if d.HasField("session_start_info"))
        assert start.hparams["objective.beta"].number_value == run.config.objective.beta
        assert start.hparams["seed"].number_value == 0


def test_the_python_api_takes_track_uris_as_the_command_does(tmp_path):
    import vaebench

    spec, _ = write_spec(tmp_path, "tb_api", seeds=[0], grid={"objective.beta": [1]}, train={"epochs": 2})
    board = tmp_path / "tb"
    status = vaebench.run(spec, workers=1, results=tmp_path / "results", track=[f"tensorboard:{board}"])
    assert status.done == status.total == 1
    (run,) = spec.runs()
    acc = EventAccumulator(str(board / "tb_api" / run.run_id))
    acc.Reload()
    assert [e.step for e in acc.Scalars("epoch/train_loss")] == [1, 2]
    with pytest.raises(vaebench.VaebenchError, match="track= none turns tracking off: give it alone"):
        vaebench.run(spec, workers=1, results=tmp_path / "other", track=["none", f"tensorboard:{board}"])
    assert not (tmp_path / "other").exists()
