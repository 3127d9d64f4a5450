"""Process-level helpers every stage shares: the device (its check, the GPUs a run may use, the
training precision on it), seeding, file locks and atomic writes."""

from __future__ import annotations

import contextlib
import os
import warnings
from typing import Iterator, Mapping, Optional

import torch

from ..errors import DeviceError

DEVICE_ENV = "VAEBENCH_DEVICE"
CUDA_VISIBLE_ENV = "CUDA_VISIBLE_DEVICES"
# train.precision -> the dtype torch.autocast runs a training step's forward pass and loss in
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """--device, else $VAEBENCH_DEVICE, else 'auto': CUDA when present, else CPU."""
    if isinstance(device, torch.device):
        return device
    device = device or os.environ.get(DEVICE_ENV) or "auto"
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_device(device: str | torch.device | None = None, option: str = "--device") -> torch.device:
    """`resolve_device`, refusing what this machine cannot run with a DeviceError (exit code 2) that
    names where the value came from (`option`, or $VAEBENCH_DEVICE): a string torch does not read
    as a device, CUDA where torch sees no GPU, cuda:N past the visible GPUs. Called by `run` and
    `worker` before anything is written."""
    given = device if device is not None else os.environ.get(DEVICE_ENV)
    where = f"{option} {device}" if device is not None else f"${DEVICE_ENV}={given}" if given else f"{option} auto"
    try:
        dev = resolve_device(device)
    except (RuntimeError, ValueError):
        raise DeviceError(f"{where}: not a device; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            if torch.version.cuda is None:
                why = f"torch {torch.__version__} is built without CUDA"
            else:
                visible = os.environ.get(CUDA_VISIBLE_ENV)
                why = f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees no GPU" + (
                    f" with {CUDA_VISIBLE_ENV}={visible!r}" if visible is not None else ""
                )
            raise DeviceError(f"{where}: CUDA is not available on this machine ({why}); use cpu or auto")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise DeviceError(f"{where}: this machine has {count} visible GPU(s), cuda:0 to cuda:{count - 1}")
    return dev


def gpu_slots(device: torch.device, environ: Optional[Mapping[str, str]] = None) -> list[str]:
    """The GPUs a run on the CUDA `device` may use, as CUDA_VISIBLE_DEVICES entries (one per GPU):
    every visible GPU for `cuda`, the one GPU for `cuda:N`. An existing CUDA_VISIBLE_DEVICES list
    (a scheduler's allocation) is respected: visible GPU N is its Nth entry, kept as written (an
    index, a GPU-UUID or a MIG id); without the variable, GPU N is "N"."""
    environ = os.environ if environ is None else environ
    count = torch.cuda.device_count()
    listed = environ.get(CUDA_VISIBLE_ENV)
    if listed is None:
        entries = [str(i) for i in range(count)]
    else:
        entries = [e.strip() for e in listed.split(",") if e.strip()][:count]
    if device.index is None:
        return entries
    return [entries[device.index]] if device.index < len(entries) else []


def check_precision(precision: str, device: torch.device, where: str = "train.precision") -> None:
    """Refuse (DeviceError, exit code 2) a training precision vaebench will not run on `device`:
    fp16 anywhere but CUDA (CPUs without AVX512-FP16/AMX-FP16 emulate float16: several times slower
    than float32, for nothing; benchmarks/results/precision.json has the measurements), bf16 on a GPU
    torch says has no bfloat16, or an autocast dtype this torch lacks for the device type (it would
    warn and run float32 under the bf16 label). fp32 runs everywhere; bf16 on any CPU (fast with AVX512-BF16/AMX)."""
    if precision not in AUTOCAST_DTYPES:
        return
    if device.type == "cuda":
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise DeviceError(
                f"{where} bf16: GPU {torch.cuda.get_device_name(device)} has no bfloat16 support; "
                "use fp16 (with loss scaling) or fp32"
            )
        return
    if precision == "fp16":
        raise DeviceError(
            f"{where} fp16 is for CUDA GPUs: on {device.type} torch emulates float16, several times "
            "slower than fp32 (see benchmarks/results/precision.json); use bf16 or fp32 there"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns, then runs float32, for an autocast dtype it lacks
        try:
            with torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision]):
                pass
        except (UserWarning, RuntimeError) as e:
            raise DeviceError(
                f"{where} {precision}: torch {torch.__version__} has no {precision} autocast on "
                f"{device.type} ({str(e).splitlines()[0]}); use fp32"
            ) from None


def autocast(device: torch.device, precision: str):
    """The context of a training step's forward pass and loss: torch.autocast to bf16 or fp16 on
    the device's type (matrix products and convolutions in that dtype; reductions, BCE-with-logits
    and the losses' sums stay float32 where autocast's op lists say so), nothing for fp32."""
    if precision not in AUTOCAST_DTYPES:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[precision])


@contextlib.contextmanager
def tf32(device: torch.device, enabled: bool) -> Iterator[bool]:
    """On CUDA: inside the block float32 matrix products (cuBLAS) and convolutions (cuDNN) may use
    TF32 tensor cores (`enabled`) or must not; the previous settings are restored after. Yields
    whether TF32 is on. On other devices it changes nothing and yields False."""
    if device.type != "cuda":
        yield False
        return
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield enabled
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def cpu_cores() -> int:
    """Cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def machine_description(device: torch.device) -> str:
    """This machine as the rows record it: CPU model, the cores this process may use, memory, and the
    GPU when `device` is one, e.g. "Intel(R) Xeon(R) ..., 2 cores, 24 GiB RAM"."""
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:  # not Linux
        pass
    import platform

    cores = cpu_cores()
    parts = [cpu or platform.processor() or platform.machine(), f"{cores} core{'s' * (cores > 1)}"]
    try:
        parts.append(f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB RAM")
    except (ValueError, OSError, AttributeError):  # no sysconf
        pass
    if device.type == "cuda":
        parts.append(torch.cuda.get_device_name(device))
    return ", ".join(parts)
