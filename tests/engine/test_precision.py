"""train.precision (fp32 | bf16 | fp16) and train.tf32, on the CPU: bf16 trains like fp32 on digits;
fp16 is refused off CUDA, once, where a sweep starts (its loss-scaled loop is still exercised
through `_train`); the recorded losses and evaluation stay float32; precision is part of the run
identity; rows record it."""

from __future__ import annotations

import math

import pytest
import torch
from typer.testing import CliRunner

from vaebench import api
from vaebench.cli.commands import app
from vaebench.data import load_dataset
from vaebench.engine.train import _train, train
from vaebench.errors import DeviceError
from vaebench.runtime.device import check_precision, tf32
from vaebench.spec.sweep_spec import RunConfig, parse_spec

runner = CliRunner()
DIGITS = load_dataset(RunConfig(dataset={"name": "digits"}).dataset)
CPU = torch.device("cpu")
SPEC = {
    "study": "prec",
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "hidden_dim": 32, "latent_dim": 4},
    "train": {"epochs": 1},
    "eval": {"fid_extractor": None, "nll_examples": 20, "nll_k": 4},
    "seeds": [0],
}


def cfg(precision: str, model: dict | None = None, epochs: int = 2) -> RunConfig:
    return RunConfig(
        dataset={"name": "digits"}, model=model or {"name": "mlp"}, train={"epochs": epochs, "precision": precision}
    )


@pytest.mark.parametrize("model", [{"name": "mlp"}, {"name": "conv", "channels": [16, 32]}])
def test_bf16_trains_like_fp32_on_cpu(model):
    ref = train(cfg("fp32", model), DIGITS, seed=0, device="cpu")
    low = train(cfg("bf16", model), DIGITS, seed=0, device="cpu")
    assert ref.status == low.status == "ok"
    assert (ref.precision, low.precision) == ("fp32", "bf16") and not low.tf32  # TF32 is CUDA only
    for a, b in zip(ref.history, low.history):
        for key in ("train_loss", "test_loss", "test_recon", "test_kl"):
            assert math.isfinite(b[key])
            assert b[key] == pytest.approx(a[key], rel=0.02), key  # measured: within 0.05%
    assert low.history[-1]["test_loss"] < low.history[0]["test_loss"]
    # autocast touched the computation only: the weights (and so the evaluation) stay float32
    assert {p.dtype for p in low.model.parameters()} == {torch.float32}
    row = api.evaluate(low.model, DIGITS, config=cfg("bf16", model), metrics=["elbo"])
    assert math.isfinite(row["neg_elbo"])


def test_fp16_is_refused_off_cuda():
    with pytest.raises(DeviceError, match="train.precision fp16 is for CUDA GPUs") as e:
        check_precision("fp16", CPU)
    assert e.value.exit_code == 2
    check_precision("bf16", CPU)  # bf16 and fp32 are accepted on CPU
    check_precision("fp32", CPU)


def test_fp16_loop_with_a_gradient_scaler_trains():
    """What a GPU runs for fp16 (autocast to float16, scaled loss, unscaled clipping, skipped
    overflow steps), exercised on the CPU through the loop without the device check."""
    result = _train(cfg("fp16", epochs=3), DIGITS, 0, CPU, None)
    assert result.status == "ok" and result.precision == "fp16"
    losses = [h["test_loss"] for h in result.history]
    assert all(map(math.isfinite, losses)) and losses[-1] < losses[0]
    ref = train(cfg("fp32", epochs=3), DIGITS, seed=0, device="cpu").history[-1]["test_loss"]
    assert losses[-1] == pytest.approx(ref, rel=0.05)  # the first steps are skipped while the scale settles


def test_fp16_spec_on_cpu_exits_2_with_nothing_written(tmp_path, write_spec):
    results = tmp_path / "results"
    spec = write_spec({**SPEC, "grid": {"train.precision": ["fp32", "fp16"]}})
    out = runner.invoke(app, ["run", str(spec), "--device", "cpu", "--results", str(results)])
    assert out.exit_code == 2 and "train.precision fp16 is for CUDA GPUs" in out.output, out.output
    assert not results.exists()
    sampled = {
        **SPEC,
        "dataset": {**SPEC["dataset"], "validation": 200},
        "search": {
            "sampler": "random",
            "n_trials": 2,
            "space": {"train.precision": {"type": "categorical", "choices": ["bf16", "fp16"]}},
        },
    }
    with pytest.raises(DeviceError):
        api.run(sampled, results=results, device="cpu")
    assert not results.exists()


def test_tf32_is_a_cuda_setting_restored_after():
    with tf32(CPU, True) as on:
        assert on is False  # nothing to switch on a CPU
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    with tf32(torch.device("cuda"), True) as on:
        assert on and torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
        with tf32(torch.device("cuda"), False):  # evaluation inside training: full float32
            assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
        assert torch.backends.cuda.matmul.allow_tf32
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == before


def test_precision_is_part_of_the_run_identity():
    base = parse_spec(SPEC)
    same = parse_spec({**SPEC, "train": {"epochs": 1, "precision": "fp32", "tf32": True}})  # the defaults
    assert [r.run_id for r in same.runs()] == [r.run_id for r in base.runs()]
    assert same.fingerprint() == base.fingerprint()
    bf16 = parse_spec({**SPEC, "train": {"epochs": 1, "precision": "bf16"}})
    no_tf32 = parse_spec({**SPEC, "train": {"epochs": 1, "tf32": False}})
    ids = {base.runs()[0].run_id, bf16.runs()[0].run_id, no_tf32.runs()[0].run_id}
    assert len(ids) == 3
    assert bf16.fingerprint() != base.fingerprint()
    grid = parse_spec({**SPEC, "grid": {"train.precision": ["fp32", "bf16"]}})
    assert [r.run_id for r in grid.runs()] == [base.runs()[0].run_id, bf16.runs()[0].run_id]
    with pytest.raises(Exception, match="precision"):
        parse_spec({**SPEC, "train": {"precision": "fp8"}})


def test_rows_record_the_precision(tmp_path):
    status = api.run({**SPEC, "train": {"epochs": 1, "precision": "bf16"}}, results=tmp_path, workers=1, device="cpu")
    assert status.done == status.total == 1
    row = api.load_results("prec", tmp_path).iloc[0]
    assert row["status"] == "ok" and row["param.train.precision"] == "bf16" and row["precision"] == "bf16"
    assert bool(row["param.train.tf32"]) is True and bool(row["tf32"]) is False  # asked for; not on a CPU


def test_the_device_and_the_precisions_are_checked_once_where_the_sweep_starts(tmp_path, write_spec, monkeypatch):
    from vaebench.runtime import device as device_mod

    devices, precisions = [], []
    real_device, real_precision = device_mod.check_device, device_mod.check_precision

    def check_device(device=None, option="--device"):
        devices.append((device, option))
        return real_device(device, option)

    def check_precision(precision, device, where="train.precision"):
        precisions.append(precision)
        return real_precision(precision, device, where)

    monkeypatch.setattr(device_mod, "check_device", check_device)
    monkeypatch.setattr(device_mod, "check_precision", check_precision)
    spec = write_spec({**SPEC, "grid": {"train.precision": ["fp32", "bf16"]}})
    out = runner.invoke(app, ["run", str(spec), "--device", "cpu", "--results", str(tmp_path / "results")])
    assert out.exit_code == 0, out.output
    assert devices == [("cpu", "--device")]  # the command's boundary, naming its option
    assert precisions == ["bf16", "fp32"]  # each of the spec's precisions, once, not again per run
