"""A small CNN classifier per dataset: the feature extractor of the offline FID and of the
classifier-based Inception Score (the established MNIST practice: a Fréchet distance on a domain
classifier's features).

Trained once per dataset on its training split and cached by content: the cache key hashes the
dataset checksum, the architecture version and the training settings. The checkpoint stores the
weights and the test accuracy next to them.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..data.base import Dataset
from ..runtime.cache import cache_dir
from ..runtime.device import resolve_device
from ..runtime.files import atomic_path, file_lock

ARCH_VERSION = 3  # bump when DigitClassifier changes: old checkpoints are then never reused
TRAIN_SETTINGS = {"epochs": 6, "batch_size": 128, "lr": 1e-3, "final_lr": 1e-4, "seed": 0}  # last epoch at final_lr
TRAIN_THREADS = 1  # intra-op CPU threads while training: a fixed count makes the weights reproducible
FEATURE_DIM = 128
MIN_EXAMPLES_PER_EPOCH = 5000  # a small training split is repeated within an "epoch" up to this many


def _repeat(n_train: int) -> int:
    return max(1, math.ceil(MIN_EXAMPLES_PER_EPOCH / n_train))


class DigitClassifier(nn.Module):
    """conv3x3(16)-ReLU-maxpool2 -> conv3x3(64)-ReLU-maxpool2 -> adaptive avg pool to 7x7 ->
    linear(128)-ReLU ('penultimate', the FID features) -> linear(num_classes) ('logits').
    About 2.4 M multiply-adds per 28x28 image, so features for 20,000 images take a few seconds
    on one CPU core. Works for any input size (28x28: the adaptive pooling is the identity;
    8x8 digits: 2x2 spread to 7x7)."""

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 64, 3, padding=1)
        self.fc1 = nn.Linear(64 * 7 * 7, FEATURE_DIM)
        self.fc2 = nn.Linear(FEATURE_DIM, num_classes)
        self.dropout = nn.Dropout(0.25)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) in [0, 1] -> (penultimate (B, 128), logits (B, K))."""
        h = F.relu(self.conv1(x))
        h = F.max_pool2d(h, 2) if min(h.shape[-2:]) >= 2 else h
        h = F.relu(self.conv2(h))
        h = F.max_pool2d(h, 2) if min(h.shape[-2:]) >= 4 else h
        h = F.adaptive_avg_pool2d(h, 7).flatten(1)  # (B, 3136)
        penultimate = F.relu(self.fc1(self.dropout(h)))
        return penultimate, self.fc2(self.dropout(penultimate))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[1]

    def inference_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`features(x)` of the model in eval mode, computed faster on CPU (the FID pass): the
        same layers, weights and function, reordered where that is exact —

        - dropout is the identity in eval mode: skipped;
        - max pooling before the ReLU (ReLU is monotonic, so max(relu(a)) == relu(max(a)) exactly):
          the ReLU touches a quarter of the values, and 2x2 pooling of even sizes is two
          elementwise maxima of strided views (max_pool2d also writes an index per output);
        - adaptive average pooling is skipped when its input is already 7x7 (28x28 images): there
          it is the identity;
        - activations in channels_last, the layout oneDNN's CPU convolutions run fastest.

        Equal to `features` up to float32 rounding inside the convolutions (tests/metrics/test_fid.py).
        Runs under `torch.inference_mode` (no gradients); in training mode it is `features` itself."""
        if self.training:
            return self.features(x)
        with torch.inference_mode():
            h = _conv_channels_last(self.conv1, x)
            h = (_max_pool2(h) if min(h.shape[-2:]) >= 2 else h).relu_()
            h = _conv_channels_last(self.conv2, h)
            h = (_max_pool2(h) if min(h.shape[-2:]) >= 4 else h).relu_()
            if tuple(h.shape[-2:]) != (7, 7):
                h = F.adaptive_avg_pool2d(h, 7)
            penultimate = F.relu(self.fc1(h.flatten(1)))  # flatten(1): the (C, H, W) order fc1 was trained on
            return penultimate, self.fc2(penultimate)


def _conv_channels_last(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """conv(x) with input and weight in channels_last (for a 1-channel input only the weight's
    layout tells torch to pick the channels_last kernel); the output is channels_last."""
    cl = torch.channels_last  # .to restrides size-1 channels, which .contiguous leaves as they are
    return F.conv2d(
        x.to(memory_format=cl),
        conv.weight.to(memory_format=cl),
        conv.bias,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
    )


def _max_pool2(h: torch.Tensor) -> torch.Tensor:
    """F.max_pool2d(h, 2) (kernel 2, stride 2, floor). Channels-last input of even height and width:
    the maxima of its four interleaved 2x2 sub-grids, without max_pool2d's index tensor; identical
    values (NaNs propagate in both)."""
    b, c, height, width = h.shape
    if height % 2 or width % 2 or not h.is_contiguous(memory_format=torch.channels_last):
        return F.max_pool2d(h, 2)
    v = h.permute(0, 2, 3, 1).reshape(b, height // 2, 2, width // 2, 2 * c)  # a view: (B, H/2, 2, W/2, 2C)
    rows = torch.maximum(v[:, :, 0], v[:, :, 1])  # (B, H/2, W/2, 2C): max over the row pair
    return torch.maximum(rows[..., :c], rows[..., c:]).permute(0, 3, 1, 2)  # max over the column pair


@dataclass(frozen=True)
class ClassifierInfo:
    path: Path  # checkpoint: {"state_dict", "in_channels", "num_classes", "info"}
    key: str  # content hash: dataset checksum + architecture version + training settings
    test_accuracy: float
    train_seconds: float | None  # from the .json beside the checkpoint (None if it was removed)


def classifier_key(data: Dataset) -> str:
    settings = {"dataset": data.checksum, "arch": ARCH_VERSION, "train": TRAIN_SETTINGS, "threads": TRAIN_THREADS}
    if _repeat(len(data.x_train)) > 1:  # small datasets: the repetition is part of the training
        settings["repeat"] = _repeat(len(data.x_train))
    blob = json.dumps(settings, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@torch.no_grad()
def accuracy(model: DigitClassifier, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2000) -> float:
    model.eval()
    correct = sum(
        (model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum().item()
        for i in range(0, len(x), batch_size)
    )
    return correct / len(x)


def train_classifier(data: Dataset, device: str | torch.device | None = None) -> tuple[DigitClassifier, float]:
    """Adam on the training split with TRAIN_SETTINGS (the last epoch at final_lr); returns the
    model and its test accuracy. On the CPU it trains on TRAIN_THREADS threads whatever the
    process's setting, so that a retraining with the same torch build gives the same weights (the
    same bytes, hence the same SHA-256, on any layout of workers)."""
    device = resolve_device(device)
    threads = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(TRAIN_THREADS)
    try:
        g = torch.Generator().manual_seed(TRAIN_SETTINGS["seed"])
        torch.manual_seed(TRAIN_SETTINGS["seed"])
        model = DigitClassifier(data.shape[0], data.num_classes).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=TRAIN_SETTINGS["lr"])
        x, y = data.x_train.to(device), data.y_train.to(device)
        bs = TRAIN_SETTINGS["batch_size"]
        repeat = _repeat(len(x))
        epochs = TRAIN_SETTINGS["epochs"] * repeat
        for epoch in range(epochs):
            if epoch == epochs - repeat:  # the last epoch at the lower learning rate
                for group in opt.param_groups:
                    group["lr"] = TRAIN_SETTINGS["final_lr"]
            model.train()
            perm = torch.randperm(len(x), generator=g).to(device)
            for i in range(0, len(x), bs):
                idx = perm[i : i + bs]
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return model.eval(), accuracy(model, data.x_test.to(device), data.y_test.to(device))
    finally:
        torch.set_num_threads(threads)


def checkpoint_bytes(model: DigitClassifier, info: dict) -> bytes:
    """The checkpoint file's content: a function of the weights and `info` alone (serialized through
    a buffer, so the archive's internal name does not depend on the file name), so that equal weights
    give an equal file and an equal SHA-256 (the FID extractor's identity). Nothing that varies
    between equal trainings (times, paths) goes in `info`."""
    buf = io.BytesIO()
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    torch.save(
        {
            "state_dict": state,
            "in_channels": model.conv1.in_channels,
            "num_classes": model.fc2.out_features,
            "info": info,
        },
        buf,
    )
    return buf.getvalue()


def cached_classifier(data: Dataset, device: str | torch.device | None = None) -> ClassifierInfo:
    """The classifier for `data`, trained on first use (under a file lock, so concurrent workers
    train it once) and loaded from the cache afterwards. The training time goes in the `.json`
    beside the checkpoint, not in it (see checkpoint_bytes)."""
    key = classifier_key(data)
    path = cache_dir() / "classifiers" / f"{data.name}-{key}.pt"
    sidecar = path.with_suffix(".json")
    with file_lock(path.with_suffix(".lock")):
        if not path.is_file():
            t0 = time.perf_counter()
            model, acc = train_classifier(data, device)
            seconds = time.perf_counter() - t0
            info = {
                "dataset": data.name,
                "dataset_checksum": data.checksum,
                "test_accuracy": acc,
                "arch_version": ARCH_VERSION,
                "train_threads": TRAIN_THREADS,
                **TRAIN_SETTINGS,
            }
            with atomic_path(path) as tmp:
                tmp.write_bytes(checkpoint_bytes(model, info))
            sidecar.write_text(json.dumps({**info, "train_seconds": seconds}, indent=2) + "\n")
    info = torch.load(path, weights_only=True)["info"]
    seconds = json.loads(sidecar.read_text()).get("train_seconds") if sidecar.is_file() else None
    return ClassifierInfo(path, key, info["test_accuracy"], seconds)


def load_classifier(path: str | Path) -> DigitClassifier:
    ckpt = torch.load(path, weights_only=True)
    model = DigitClassifier(ckpt["in_channels"], ckpt["num_classes"])
    model.load_state_dict(ckpt["state_dict"])
    return model.eval()
