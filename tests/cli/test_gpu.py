"""GPU layout and device handling, on a machine without a GPU: the device count is mocked
(torch.cuda.is_available / device_count) and each worker's environment is built by launch.py's pure
functions, or captured in place of starting the processes. `--device cuda` where CUDA is missing
must exit 2 with nothing written; `--device cpu` runs."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from vaebench import api
from vaebench.cli.commands import app
from vaebench.errors import DeviceError
from vaebench.runtime.device import check_device, gpu_slots
from vaebench.sweep import launch as launch_mod
from vaebench.sweep.launch import Layout, plan_layout, worker_env

runner = CliRunner()
FAST = {
    "study": "dev",
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "hidden_dim": 16, "latent_dim": 2},
    "train": {"epochs": 1},
    "eval": {"fid_extractor": None, "nll_examples": 20, "nll_k": 4},
    "seeds": [0],
}


def fake_gpus(monkeypatch, n: int, visible: str | None = None) -> None:
    """This process sees `n` GPUs (and CUDA_VISIBLE_DEVICES=`visible`, or none set)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n)
    monkeypatch.delenv("VAEBENCH_DEVICE", raising=False)
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)


def envs(layout: Layout, base=None) -> list[dict]:
    return [worker_env(layout, i, base if base is not None else {"PATH": "/usr/bin"}) for i in range(layout.workers)]


# ---------------------------------------------------------------------------------------------
# layouts


def test_one_worker_per_gpu_each_seeing_only_its_own(monkeypatch):
    fake_gpus(monkeypatch, 4)
    device = check_device(None)  # auto: CUDA when present
    assert device == torch.device("cuda")
    layout = plan_layout(None, None, 100, device, cores=16)
    assert layout == Layout(4, 4, ("0", "1", "2", "3"))
    got = envs(layout)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in got] == ["0", "1", "2", "3"]
    assert all(e["OMP_NUM_THREADS"] == e["MKL_NUM_THREADS"] == "4" for e in got)  # 16 cores / 4 workers
    assert [e["VAEBENCH_WORKER_LABEL"] for e in got] == ["w1", "w2", "w3", "w4"]
    assert all(e["PATH"] == "/usr/bin" and e["PYTHONUNBUFFERED"] == "1" for e in got)
    assert "4 workers x 4 threads on 4 GPUs (CUDA_VISIBLE_DEVICES 0,1,2,3; 1 per GPU)" == str(layout)


def test_an_existing_visible_list_is_mapped_onto(monkeypatch):
    """A scheduler gave this job GPUs 3 and 5 (or UUIDs): worker i gets entry i, not index i."""
    fake_gpus(monkeypatch, 2, "3,5")
    layout = plan_layout(None, None, 10, check_device("cuda"), cores=8)
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs(layout)] == ["3", "5"]
    fake_gpus(monkeypatch, 2, "GPU-aaaa, GPU-bbbb")
    assert gpu_slots(torch.device("cuda")) == ["GPU-aaaa", "GPU-bbbb"]
    assert gpu_slots(torch.device("cuda:1")) == ["GPU-bbbb"]
    # more entries than GPUs torch can use: only the usable ones
    fake_gpus(monkeypatch, 1, "7,8")
    assert gpu_slots(torch.device("cuda")) == ["7"]


def test_one_named_gpu_takes_every_worker(monkeypatch):
    fake_gpus(monkeypatch, 2, "3,5")
    layout = plan_layout(None, None, 10, check_device("cuda:1"), cores=8)
    assert layout == Layout(1, 8, ("5",))
    packed = plan_layout(None, None, 10, torch.device("cuda:1"), cores=8, workers_per_gpu=3)
    assert packed == Layout(3, 2, ("5", "5", "5"))


def test_workers_per_gpu_packs_several_to_a_device(monkeypatch):
    fake_gpus(monkeypatch, 2)
    layout = plan_layout(None, None, 100, torch.device("cuda"), cores=8, workers_per_gpu=3)
    assert layout.workers == 6 and layout.threads == 1
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs(layout)] == ["0", "1", "0", "1", "0", "1"]
    # never more workers than pending runs; the few spread over the GPUs
    assert plan_layout(None, None, 3, torch.device("cuda"), cores=8, workers_per_gpu=3).gpus == ("0", "1", "0")
    assert plan_layout(None, None, 1, torch.device("cuda"), cores=8) == Layout(1, 8, ("0",))
    # an explicit worker count overrides the default one, still round-robin over the GPUs
    assert plan_layout(5, None, 100, torch.device("cuda"), cores=10).gpus == ("0", "1", "0", "1", "0")


def test_cpu_layout_is_unchanged(monkeypatch):
    fake_gpus(monkeypatch, 2, "0,1")  # a GPU machine asked to run on its CPU
    layout = plan_layout(None, None, 10, check_device("cpu"), cores=2)
    assert layout == Layout(2, 1, ())
    got = envs(layout, {"CUDA_VISIBLE_DEVICES": "0,1"})
    assert [e["CUDA_VISIBLE_DEVICES"] for e in got] == ["0,1", "0,1"]  # left as it was
    assert all(e["OMP_NUM_THREADS"] == "1" for e in got)
    assert "CUDA_VISIBLE_DEVICES" not in envs(layout)[0]
    assert str(layout) == "2 workers x 1 thread"


def test_run_starts_one_worker_per_gpu_with_device_cuda(monkeypatch, tmp_path):
    """`vaebench.run` on a (mocked) 2-GPU machine: the study is made on CPU-side storage and two
    worker processes would start with `--device cuda`, each with its own CUDA_VISIBLE_DEVICES.
    The processes are not started: start_workers() and supervise() are replaced and record what
    they were given."""
    fake_gpus(monkeypatch, 2, "4,6")
    started = {}

    def fake_start(argv, layout, env=None):
        started.update(argv=argv, layout=layout, envs=[worker_env(layout, i, env) for i in range(layout.workers)])
        return ["fake"] * layout.workers

    def fake_supervise(procs, emit, poll=None, poll_seconds=2.0):
        assert procs == ["fake"] * started["layout"].workers
        return [0] * len(procs)

    monkeypatch.setattr(launch_mod, "start_workers", fake_start)
    monkeypatch.setattr(launch_mod, "supervise", fake_supervise)
    status = api.run({**FAST, "seeds": [0, 1, 2]}, results=tmp_path, threads=1)
    assert started["layout"] == Layout(2, 1, ("4", "6"))
    argv = started["argv"]
    assert argv[argv.index("--device") + 1] == "cuda"
    assert [e["CUDA_VISIBLE_DEVICES"] for e in started["envs"]] == ["4", "6"]
    assert all("(worker of 2 workers x 1 thread on 2 GPUs" in e["VAEBENCH_COMMAND"] for e in started["envs"])
    assert status.total == 3 and status.done == 0  # nothing ran: the workers were not started

    started.clear()
    api.run({**FAST, "study": "packed", "seeds": [0, 1, 2, 3, 4]}, results=tmp_path, workers_per_gpu=2)
    assert started["layout"].gpus == ("4", "6", "4", "6")


# ---------------------------------------------------------------------------------------------
# the device check


def test_check_device_names_the_option(monkeypatch):
    fake_gpus(monkeypatch, 0)
    with pytest.raises(DeviceError, match=r"^--device cuda: CUDA is not available") as e:
        check_device("cuda")
    assert e.value.exit_code == 2
    with pytest.raises(DeviceError, match=r"^device= cuda:1: CUDA is not available"):
        check_device("cuda:1", "device=")
    monkeypatch.setenv("VAEBENCH_DEVICE", "cuda")
    with pytest.raises(DeviceError, match=r"^\$VAEBENCH_DEVICE=cuda: CUDA is not available"):
        check_device(None)
    monkeypatch.delenv("VAEBENCH_DEVICE")
    with pytest.raises(DeviceError, match=r"--device gpu: not a device"):
        check_device("gpu")
    assert check_device(None) == torch.device("cpu")  # auto without a GPU
    fake_gpus(monkeypatch, 2)
    with pytest.raises(DeviceError, match=r"--device cuda:2: this machine has 2 visible GPU\(s\), cuda:0 to cuda:1"):
        check_device("cuda:2")
    assert check_device("cuda:1") == torch.device("cuda:1")


@pytest.mark.parametrize("command", ["run", "worker"])
def test_device_cuda_without_cuda_exits_2_with_nothing_written(command, monkeypatch, tmp_path, write_spec):
    fake_gpus(monkeypatch, 0)
    results = tmp_path / "results"
    args = [str(write_spec(FAST))] if command == "run" else ["--study", "dev"]
    out = runner.invoke(app, [command, *args, "--device", "cuda", "--results", str(results)])
    assert out.exit_code == 2, out.output
    assert "--device cuda: CUDA is not available" in out.output
    assert not results.exists()


def test_device_cpu_runs_and_workers_0_creates_the_study_for_workers(tmp_path, write_spec):
    """The cluster recipe on this machine: `run --workers 0` creates the study and starts nothing;
    a `worker --device cpu` then runs it to the end; the rows record precision and TF32."""
    results, spec = str(tmp_path / "results"), str(write_spec({**FAST, "seeds": [0, 1]}))
    out = runner.invoke(app, ["run", spec, "--workers", "0", "--device", "cpu", "--results", results, "-q"])
    assert out.exit_code == 0, out.output
    assert "no worker started" in out.output
    status = runner.invoke(app, ["status", "--study", "dev", "--results", results])
    assert "0/2 done" in status.output and "2 waiting" in status.output
    out = runner.invoke(app, ["worker", "--study", "dev", "--device", "cpu", "--results", results, "-q"])
    assert out.exit_code == 0, out.output
    assert "device cpu" in out.output
    df = api.load_results("dev", results)
    assert len(df) == 2 and set(df["status"]) == {"ok"} and set(df["device"]) == {"cpu"}
    assert set(df["precision"]) == {"fp32"} and set(df["tf32"]) == {False}  # TF32 is a CUDA setting
    out = runner.invoke(app, ["run", spec, "--device", "cpu", "--results", results, "-q"])
    assert out.exit_code == 0, out.output  # finished: nothing left to run
