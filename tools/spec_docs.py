"""Write docs/spec.md, the sweep-spec reference, from vaebench's pydantic schema and registries.

    python tools/spec_docs.py            # (re)write docs/spec.md
    python tools/spec_docs.py --check    # exit 1 if docs/spec.md differs from what would be written

What is generated: every field of `vaebench.spec.sweep_spec.SweepSpec` and of the section models reachable
from it through its fields' annotations (name, type, constraint, default, description); the
built-in entries of the registries (model families and datasets with their options models,
likelihoods, training bounds, KL schedules, samplers, pruners, metrics with their declared columns
and options); the shipped sweeps (sweeps/*.yaml). The prose between them is this file's template
text. Only built-in entries (defined in a `vaebench` module) are listed, so the output does not
depend on which plugins are installed; it is sorted and holds no timestamps, addresses or paths
of this machine.

Names imported (`_LOCATIONS`): vaebench.spec.sweep_spec.SweepSpec; vaebench.MODELS, vaebench.DATASETS,
vaebench.METRICS; vaebench.metrics.declared_columns; the registries LIKELIHOODS and ESTIMATORS
(vaebench.objectives), SCHEDULES (vaebench.objectives.schedules), SAMPLERS and PRUNERS
(vaebench.spec.samplers).
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import re
import sys
import types
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "spec.md"
SWEEPS = ROOT / "sweeps"
REGENERATE = "python tools/spec_docs.py"

if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------------------------------------
# where the names live

_LOCATIONS = {
    "SweepSpec": "vaebench.spec.sweep_spec",
    "MODELS": "vaebench",
    "DATASETS": "vaebench",
    "METRICS": "vaebench",
    "declared_columns": "vaebench.metrics",
    "LIKELIHOODS": "vaebench.objectives",
    "ESTIMATORS": "vaebench.objectives",
    "SCHEDULES": "vaebench.objectives.schedules",
    "SAMPLERS": "vaebench.spec.samplers",
    "PRUNERS": "vaebench.spec.samplers",
}


def public(name: str):
    """The object `name` from its module in _LOCATIONS."""
    return getattr(importlib.import_module(_LOCATIONS[name]), name)


# ---------------------------------------------------------------------------------------------
# rendering helpers


def _origin_module(entry) -> str:
    for attr in ("build", "load", "compute", "fn"):
        f = getattr(entry, attr, None)
        if callable(f):
            return getattr(f, "__module__", "") or ""
    return getattr(entry, "__module__", "") or ""


def builtin_names(registry) -> list[str]:
    """The registry's entries defined in vaebench itself (plugins left out), sorted."""
    out = []
    for name in registry.names():
        module = _origin_module(registry.get(name))
        if module == "vaebench" or module.startswith("vaebench."):
            out.append(name)
    return sorted(out)


def cell(text) -> str:
    """Text for a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def oneline(text) -> str:
    """Text for a paragraph: whitespace collapsed."""
    return " ".join(str(text).split())


def code(value) -> str:
    return f"`{value}`"


def _jsonable(value):
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def literal(value) -> str:
    """A value as it is written in YAML/JSON."""
    return json.dumps(_jsonable(value), ensure_ascii=False)


def _is_model(ann) -> bool:
    from pydantic import BaseModel

    return isinstance(ann, type) and issubclass(ann, BaseModel)


def _registry_kind(field) -> str | None:
    """The registry a `registered(kind)` str field checks its value against: its validator, given
    a name no registry holds, answers "unknown <kind> ..."."""
    for meta in field.metadata:
        func = getattr(meta, "func", None)
        if not callable(func):
            continue
        try:
            func("\x00")
        except ValueError as e:
            m = re.match(r"unknown (\w+) ", str(e))
            if m:
                return m.group(1)
        except Exception:  # noqa: BLE001 - any other validator: not a registry check
            continue
    return None


def type_text(ann) -> str:
    origin, args = typing.get_origin(ann), typing.get_args(ann)
    if ann is type(None):
        return "null"
    if ann is typing.Any:
        return "any"
    if origin is typing.Annotated:
        return type_text(args[0])
    if origin is typing.Literal:
        return " or ".join(code(literal(a).strip('"')) for a in args)
    if origin in (typing.Union, types.UnionType):
        parts = [a for a in args if a is not type(None)]
        if all(_is_model(a) for a in parts):
            text = " or ".join(_model_title(a) for a in parts)
        else:
            text = " or ".join(type_text(a) for a in parts)
        return text + (" or null" if len(parts) < len(args) else "")
    if origin is list:
        return f"list of {type_text(args[0])}" if args else "list"
    if origin is dict:
        return f"mapping {type_text(args[0])} → {type_text(args[1])}" if args else "mapping"
    if _is_model(ann):
        return _model_title(ann)
    if isinstance(ann, type):
        return ann.__name__
    return str(ann).replace("typing.", "")


def _model_title(model) -> str:
    """How a nested model is named in a type: a discriminated search-space distribution by its
    `type`, anything else as a mapping."""
    field = model.model_fields.get("type")
    if field is not None and typing.get_origin(field.annotation) is typing.Literal:
        return f"{{type: {typing.get_args(field.annotation)[0]}, …}}"
    return "mapping"


_BOUNDS = (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"))


def constraint_text(field) -> str:
    out = []
    for meta in field.metadata:
        for attr, sign in _BOUNDS:
            if getattr(meta, attr, None) is not None:
                out.append(f"{sign} {literal(getattr(meta, attr))}")
        if getattr(meta, "min_length", None) is not None:
            out.append(f"at least {meta.min_length} item{'s' * (meta.min_length != 1)}")
    return ", ".join(out)


def default_text(field) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if _is_model(type(value)):
        return "its fields' defaults"
    return code(literal(value))


def field_rows(model, names=None, registries=None, prefix="", notes=None) -> list[str]:
    rows = []
    for name, field in model.model_fields.items():
        name = field.alias or name  # the YAML key (search.objectives: the field `targets`)
        if names is not None and name not in names:
            continue
        kind = _registry_kind(field)
        typ = type_text(field.annotation)
        desc = field.description or (notes or {}).get(prefix + name, "")
        if kind and registries and kind in registries:
            typ = f"{kind} name"
            choices = ", ".join(code(n) for n in builtin_names(registries[kind]))
            desc = f"{desc}; built-in: {choices}" if desc else f"built-in: {choices}"
        rows.append(
            f"| {code(prefix + name)} | {cell(typ)} | {cell(constraint_text(field))} | "
            f"{cell(default_text(field))} | {cell(desc)} |"
        )
    return rows


def field_table(model, **kw) -> str:
    rows = field_rows(model, **kw)
    if not rows:
        return "No options.\n"
    return "\n".join(["| key | type | constraint | default | description |", "|---|---|---|---|---|", *rows]) + "\n"


def options_table(options) -> str:
    return field_table(options) if options.model_fields else "No options of its own.\n"


# ---------------------------------------------------------------------------------------------
# template text (hand-written; the tables between the paragraphs are generated)

HEADER = f"""<!-- Generated by tools/spec_docs.py from vaebench's pydantic schema and registries: do not edit by hand.
     Regenerate with `{REGENERATE}`; `{REGENERATE} --check` (run by tests/test_docs.py) fails when this file is stale. -->

# Sweep spec reference

A spec (YAML) names everything a run depends on. It mirrors `vaebench.spec.SweepSpec`: the top-level
keys below, six sections that make up one run's configuration (`dataset`, `model`, `objective`,
`schedule`, `train`, `eval`), the `grid` and `seeds`, an optional `search` and an optional `tracking`.

Unknown keys, wrong types, out-of-range values, NaN or infinite numbers (YAML `.nan`, `.inf`; in
every field, family and metric option, grid value and search-space bound or choice) and values given
for a field the chosen variant does not read (e.g. `hidden_dim` for a `conv` model, `warmup` for a
`constant` schedule) are errors that name the file and the field, with the closest valid name.

```yaml
study: beta                       # results/<study>/ and the Optuna study name
description: free text            # not part of the study's identity
dataset:   {{name: mnist, binarize: false}}
model:     {{name: mlp, latent_dim: 32, hidden_dim: 256, depth: 2}}
objective: {{likelihood: bernoulli, beta: 1.0}}
schedule:  {{name: constant}}
train:     {{epochs: 20, batch_size: 128, lr: 1.0e-3, grad_clip: 1.0}}
eval:      {{batch_size: 2000, active_threshold: 0.01}}
grid:                             # the cells are the product of these lists
  objective.beta: [0.1, 0.5, 1, 4, 10]          # SECTION.FIELD: values
  # variant:                                    # or named overrides of several fields at once
  #   - {{name: conv, model: {{name: conv, latent_dim: 128}}}}
  #   - {{name: free bits, objective: {{free_bits: 0.5, free_bits_mode: batch}}}}
seeds: [0, 1, 2]                  # every cell runs once per seed
```

A *cell* is one point of the grid; a *run* is a cell × seed, identified by `run_id`: the first 12
hex digits of the SHA-256 of its configuration's non-default values and its seed. Values at their
defaults (a family's options included) stay out of the hash, so adding a field with a default
changes no existing run id. The study's fingerprint hashes every non-default value except
`description`, `plugins` and `tracking`. A study may *grow* under its name: a spec that keeps every fixed
setting and grid key and adds grid values or seeds adds its new cells × seeds to the study, and the
finished runs (same run ids) are kept, never rerun; optuna-dashboard and `vaebench status` count
the grown study. Any other change of an existing study's spec (a fixed setting, a removed value or
seed, another grid key) is refused: run it as a new study (`study=NEW`, `--study NEW`) or delete the
old one first (`vaebench delete --study NAME`). In the Optuna study a numeric grid key is an int or
float distribution spanning its values (log scale when all are > 0 and span ≥ 10×; a grown study
keeps the kind and scale its first trials recorded), any other a categorical.

Every key can be overridden on the command line, Hydra style: `vaebench run SPEC.yaml
train.epochs=3 seeds=[0] 'grid.objective.beta=[1,4]' study=my_try` (or `vaebench.run(spec,
overrides=[...])`, or a mapping `{{"train.epochs": 3}}`). Each value is parsed as YAML and set on the
spec's mapping by its dotted path before validation (a `grid` or `search.space` key is one step:
`grid.objective.beta`, `search.space.objective.beta.high`); the spec is then validated as a file is,
and an error in an overridden field says `(set on the command line: KEY=VALUE)`. Overrides are part
of the spec, so of the study's identity; the study, its rows (`overrides`, `command`) and its report
record them. `vaebench run SPEC.yaml --print-spec [KEY=VALUE ...]` prints the resolved spec.
A `variant` is merged onto the spec's sections; its `name` labels the row in results and reports.
Grid values and variants apply to the values the spec set, so a variant that switches the model
family does not carry the previous family's default options.

In the tables, *default* is the value used when the key is absent; *constraint* is checked when the
spec is read. Installed plugins add model families, datasets and metrics to the registries; only the
built-in entries are listed here (the example plugins' families are documented in their READMEs:
`vampprior` in [examples/vampprior](../examples/vampprior/README.md), `pythae` in
[examples/pythae](../examples/pythae/README.md)). Metric definitions: [metrics.md](metrics.md).
"""

TOP_NOTES = {
    "description": "free text; not part of the study's identity",
    "grid": "SECTION.FIELD → list of values, or `variant` → list of {name: label, SECTION: {field: value}}; "
    "the cells are the product of the lists (none: one cell)",
    "seeds": "distinct seeds ≥ 0; every cell runs once per seed (a sampled search takes exactly one)",
    "epochs": "training epochs",
    "batch_size": "examples per optimizer step",
    "objectives": "the metrics every trial is told (below); several make a multi-objective study",
    "pruner": "when a trial is stopped early (below)",
    "type": "the distribution",
    "low": "lower bound",
    "high": "upper bound",
    "choices": "the values to draw from",
    "direction": "minimize or maximize the metric",
    "step": "discretization step",
}

DATASET_TEXT = """
Every source gives float32 images in [0, 1] shaped (N, C, H, W), the official (or a fixed, seeded)
train/test split, held as one tensor on the training device, and the checksum of exactly the
tensors used (stored with every row). `binarize` applies to every source.

- `mnist`: the official 60,000 / 10,000 split, pixels / 255, read from torchvision's raw layout
  `<data root>/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte`. The data root is
  `--data-root`, else `$VAEBENCH_DATA_ROOT`, else `./data`. Missing files are downloaded through
  torchvision when the network allows (`--no-download` forbids it); otherwise the command exits 2
  naming the files and folder it expected.
- `digits`: scikit-learn's bundled 8×8 digits (1,797 images, pixels / 16), split by a permutation
  with seed 0 into 1,438 train and 359 test images.
- `synthetic`: 640 deterministic 10×12 Gaussian-blob images (512 train, 128 test), for unit tests.
- `fashion_mnist` (1×28×28), `cifar10` (RGB 32×32), `svhn` (RGB 32×32, label 10 → 0) and `celeba`
  (RGB; official partition 0 for training and 2 for testing; each 178×218 aligned face
  center-cropped and resized as in PyTorch-VAE; unlabeled): torchvision's own file layouts under the
  data root, downloaded by torchvision's classes when missing. `sweeps/cifar10_beta.yaml` and
  `sweeps/fashion_mnist_beta.yaml` are β sweeps of the conv VAE sized for a GPU.
- `image_folder`: your own PNG/JPEG images, no code (`dataset: {name: image_folder, path: ./faces,
  image_size: 64, channels: 3}`); class sub-folders give labels (torchvision's ImageFolder
  convention); without labels the class-based metrics are skipped with the reason in
  `metrics_skipped`.
- `shapes`: dSprites-like images (Higgins et al. 2017) that vaebench renders itself, one for every
  point of the product of five ground-truth factors, with every image's factor indices (the
  disentanglement metrics need them):

| factor | values | kind |
|---|---|---|
| shape | square, ellipse (semi-axes 1 : 0.5), heart | categorical (also the class label) |
| scale | `scales` values from 0.5 to 1, linear: the fraction of the largest size | ordered |
| orientation | `orientations` angles, anticlockwise. `orientation_values: period` (default): k·P/n, k = 0 … n−1, over the shape's symmetry period P (square π/2, ellipse π, heart 2π), so that with anti-aliased pixels no two images are the same picture; `dsprites`: dSprites' linspace(0, 2π, n) for every shape, both ends included | ordered |
| x, y | `positions` centre positions each, linear from r + 1 to S − r − 1 px (r = 0.2·S, the largest shape's radius; S = `image_size`) | ordered |

  The defaults give 3 × 6 × 10 × 16 × 16 = 46,080 images of 32×32 px. Each shape is scaled so
  that its area centroid is at the origin and its farthest point at radius s · 0.2 · S; with
  `pixels: antialiased` (default) a pixel's value is the fraction of its 4×4 sub-pixel centres
  inside the turned, scaled, shifted shape, rounded to 1/255, with `pixels: binary` it is 0 or 1, on
  when its centre is inside (white on black, one channel). The grid is cached in
  `$VAEBENCH_CACHE/datasets/shapes-<S>px-<key>.npz` (key: a hash of the factor grid, its
  orientation values and pixels, and the renderer version) with its SHA-256, checked on every read
  (a damaged file is rendered again), under a file lock so concurrent workers render it once.
  Split: a permutation of the grid with seed 0; the last `test_fraction` of it is the test split.

  **`shapes` and dSprites.** dSprites (Matthey et al. 2017,
  `dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`) holds 737,280 binary 64×64 images, one for
  each of color (1) × shape (3) × scale (6) × orientation (40) × posX (32) × posY (32), posY
  fastest. `shapes` renders its own images; how they differ:

| | dSprites | `shapes` (defaults) | `shapes`, `preset: dsprites` |
|---|---|---|---|
| factors, order | color (constant), shape, scale, orientation, posX, posY | shape, scale, orientation, x, y: row i's factor indices are dSprites' `latents_classes[i][1:]` for the same sizes | as dSprites, without color |
| shapes | square, ellipse, heart | square, ellipse 1 : 0.5, heart (the region (x² + y² − 1)³ ≤ x²y³) | same as the defaults |
| scale | 6 values in [0.5, 1]; pixel sizes not in the metadata | 6 values in [0.5, 1] of a largest shape reaching 0.2 · S px from its centroid | same, S = 64: 12.8 px |
| orientation | 40 values linspace(0, 2π, 40) for every shape: 0 and 2π are the same angle | 10 per shape, over its symmetry period: no repeated picture (all 46,080 distinct; with `pixels: binary`, 45,674) | dSprites' 40 values |
| position | 32 values in [0, 1] each; pixel extent not in the metadata | 16 centroid positions from r + 1 to S − r − 1 px | 32, from 13.8 to 50.2 px |
| pixels | binary | anti-aliased (4×4 supersampling, 1/255 steps) | binary, on when the pixel's centre is inside |
| images | 737,280 of 64×64 | 46,080 of 32×32 | 737,280 of 64×64 |

  `preset: dsprites` sets `image_size: 64, scales: 6, orientations: 40, positions: 32,
  orientation_values: dsprites, pixels: binary`; keys given beside it override it (`preset:
  dsprites, pixels: antialiased`). The preset is expanded when the spec is read: the run records
  those options, so it is the same run as a spec that writes them out. With dSprites' angles some
  pictures repeat: 2π is 0 (18,432 images), and at small scales turns near a symmetry (a square
  turned by 10 · 2π/39 = π/2 + 0.04) render the same binary picture: 713,814 of the 737,280 images
  are distinct (square 234,864, ellipse 239,356, heart 239,594, of 245,760 each).

  What the preset costs here (2 shared cores, 24 GiB; `/usr/bin/time -v` on
  `render_shapes(64, 6, 40, 32, orientation_values="dsprites", pixels=...)` and on
  `load_dataset` of `{name: shapes, preset: dsprites}`):

| step | wall time | peak memory (RSS) |
|---|---|---|
| render, `pixels: binary` (the preset) | 12.9 s, 16.7 s with the interpreter's start (8.4 s user + 6.1 s system CPU) | 3.5 GB: the 3.02 GB uint8 grid and the interpreter |
| render, `pixels: antialiased` (16 samples a pixel) | 601 s on a loaded machine (129 s user + 100 s system CPU) | 3.5 GB |
| `load_dataset`, first time (render, write the 17.7 MB compressed cache, split) | 69 s | 16.2 GB |
| `load_dataset` from the cache | 63 s (of which, timed apart: 11 s reading and verifying the cache, 23 s converting the training split, 9 s its checksum) | 16.2 GB |

  Every `Dataset` holds float32 images: 737,280 × 64 × 64 × 4 bytes = 12.08 GB (552,960 train,
  184,320 test), beside the 3.02 GB uint8 grid while the splits are built (converted 65,536
  images at a time, so no uint8 copy of a split is made). A run then needs that 12 GB plus what
  training copies: a `validation` split copies the training images it keeps (up to 9 GB more),
  `binarize` another test split. On this machine run one such worker at a time; use a reduced grid
  (`preset: dsprites, positions: 16`: 184,320 images, 3 GB) to train several at once.
"""

MODEL_TEXT = """
Every family computes its shapes from the data (8×8, 28×28, 10×12 and 64×64 inputs all work) and
implements the `vaebench.VAE` interface (`vaebench/models/base.py`).

- `mlp`: input → `hidden_dim` × `depth` (ReLU) → (μ, log σ²); z → `hidden_dim` × `depth` → input.
  `depth: 2` is the tutorial's "MLP (2-layer)", `depth: 4` its "MLP (4-layer)".
- `conv`: per entry of `channels`, Conv2d 3×3 stride 2 padding 1 + BatchNorm2d + ReLU (each stage
  maps a side s to ⌈s/2⌉); linear heads for μ and log σ²; the decoder mirrors it with
  ConvTranspose2d 3×3 stride 2 (output padding chosen per axis to land on the encoder's sizes) and
  ends in a 3×3 convolution.
- `resnet`: a 3×3 stem convolution, then per stage a residual block (conv-BN-ReLU-conv-BN +
  identity, ReLU) and a stride-2 conv-BN-ReLU; the decoder mirrors it with transposed convolutions
  each followed by a residual block.
- `cvae`: the MLP with the one-hot class label concatenated to the encoder and decoder inputs,
  q(z|x, y), p(x|z, y); sampling takes labels (default 0, 1, …, K−1, 0, …).
- `ladder` (Sønderby et al. 2016): several stochastic layers, z their concatenation; `latent_dim`
  must equal the sum of `latent_dims`.
- `vqvae` (van den Oord et al. 2017): conv encoder and decoder, a codebook of `num_embeddings`
  vectors of `latent_dim` numbers, straight-through gradient, codebook and commitment losses (or an
  EMA codebook); its KL is the constant n_positions · log K; it cannot sample (no prior over codes),
  its posterior is a point mass and not Gaussian, so sample FID, IS, NLL, active units and MIG/SAP
  are skipped with the reason.
"""

OBJECTIVE_TEXT = """
Likelihoods, per image, in nats (x̂ the decoder output; for `gaussian_learned` the decoder has two
output channels per image channel, a mean m and a raw value r, with σ² = `variance_floor` + softplus(r)):

| likelihood | −log p(x\\|z) | E[x\\|z] | tutorial's term |
|---|---|---|---|
| `bernoulli` | Σ_i BCE-with-logits(x̂_i, x_i) | sigmoid(x̂) | BCE, `reduction='sum'` |
| `gaussian` | Σ_i (x_i − x̂_i)²/(2·variance) + ½ log(2π·variance) | x̂ | MSE sum (variance 0.5) |
| `laplace` | Σ_i \\|x_i − x̂_i\\|/b + log(2b) | x̂ | L1 sum (b = 1) |
| `gaussian_learned` | ½ Σ_i (x_i − m_i)²/σ_i² + log σ_i² + log 2π | m | "Gaussian with learned variance" |

On grayscale (non-binary) images the `bernoulli` term is a cross-entropy, not a normalized
likelihood. Likelihoods of different families are in different units of density: compare them by
`recon_mse` and `ssim`, not by −ELBO.

Training objective at optimizer step t (t counts steps from 0; T steps in the run):

- `elbo`: loss = mean_batch[R(x)] + β·w(t)·K + the model's auxiliary loss (the VQ-VAE's codebook and
  commitment terms; 0 for the others), where R(x) = −log p(x|z), z = μ + σ·ε, and
  K = mean_batch Σ_j KL_j without free bits;
  K = mean_batch Σ_j max(KL_j(x), λ) for `free_bits_mode: example` (the tutorial's clamp);
  K = Σ_j max(mean_batch KL_j(x), λ) for `batch` (Kingma et al. 2016).
  With `reduction: mean`, R(x) is divided by the number of pixels (the tutorial's
  `reduction='mean'`). Free bits, β and w(t) shape only the objective: the KL in the history and the
  metrics is always the raw, unweighted, unclamped KL.
- `iwae` (Burda et al. 2016): loss = −mean_batch log (1/k) Σ_j p(x|z_j) p(z_j) / q(z_j|x),
  z_j ~ q(z|x), j = 1 … `iwae_k`, one batched decoder pass over the k·B codes; k = 1 is the ELBO with
  a Monte Carlo KL. Needs β = 1, no free bits, `reduction: sum` and the constant schedule.
"""

SCHEDULE_TEXT = """
KL-weight schedules w(t) ∈ [0, 1] (the KL term's weight is β·w(t)), with u = t / steps_per_epoch for
`unit: epochs` and u = t for `steps`:

- `constant`: 1.
- `linear` (Bowman et al. 2016): min(1, u / warmup).
- `logistic` (Bowman et al. 2016): 1 / (1 + exp(−steepness·(u − midpoint))).
- `cyclical` (Fu et al. 2019): period P = T / cycles, τ = (t mod P) / P, w = min(1, τ / ratio): rises
  linearly for the first `ratio` of each cycle, then holds at 1.

The history's `kl_weight` is β times the mean of w over the epoch's steps. Fields a schedule does
not read must stay at their defaults:
"""

TRAIN_TEXT = """
Adam on index slices of the on-device tensors (no DataLoader). `precision` and `tf32` apply to the
training steps only: weights, gradients and Adam's state stay float32, and the per-epoch test loss,
every metric and the figure arrays run in float32 with TF32 off. `fp16` is refused on a CPU (exit 2)
and `bf16` on a GPU torch says lacks it. Details and measurements: [scaling.md](scaling.md#gpus).
"""

EVAL_TEXT = """
The evaluation settings below are read by the built-in metrics. A metric that declares options takes
them under `eval.<metric name>` (e.g. `eval: {lpips: {samples: 2000, net: alex, resize: 64}}`); only
options that differ from their defaults enter the run id. The settings below are the options of the
built-in metrics that read them (listed with each metric) and may be given that way too:
`eval: {fid: {fid_samples: 1000}}` is `eval: {fid_samples: 1000}`, the same run. Metric definitions,
units and the exact settings behind each number: [metrics.md](metrics.md).
"""

SEARCH_TEXT = """
The optional `search` section says how Optuna picks configurations, what each trial is told, and when
a trial is stopped early. Without it a spec is a grid search minimizing `neg_elbo`.

```yaml
search:
  sampler: tpe                 # grid (default) | random | tpe | nsga2
  n_trials: 30                 # the budget of a sampled search (not for grid)
  seed: 0                      # the sampler's seed
  space:                       # SECTION.FIELD -> distribution (sampled searches; grid uses `grid`)
    objective.beta:   {type: float, low: 0.1, high: 10.0, log: true}
    model.latent_dim: {type: int, low: 2, high: 64, log: true}
    objective.likelihood: {type: categorical, choices: [bernoulli, gaussian]}
  objectives:                  # numeric metric columns; several = a multi-objective study
    - {metric: recon_mse, direction: minimize}
    - {metric: kl, direction: minimize}
  pruner: {name: hyperband, min_resource: 2, reduction_factor: 3}        # single objective only
```

- `grid` enqueues every cell × seed exactly once when the study is created, so it stays exact under
  many workers. A sampled search (`random`, `tpe`, `nsga2`) runs each drawn configuration with the
  spec's one seed (rerun the best configurations under a grid for several seeds). Its budget counts
  every trial but the crashed ones, which are retried or replaced, and holds exactly under parallel
  workers (trials are drawn under the study's lock). A draw that repeats an earlier configuration
  reuses that run's row.
- Pruners see one value per epoch, the test −ELBO (nats per example, β = 1), so they need a single
  objective to minimize. A pruned trial is recorded with status `pruned`, the epoch where it stopped
  (`epochs_completed`, and in `reason`) and its history; it is not evaluated, not shown in report
  tables (the report lists it apart) and not rerun on resume.
- With several objectives the report adds the Pareto front: the finished runs no other run beats in
  every objective (Optuna's `study.best_trials` is the same set).
- Examples: `sweeps/pareto_tpe.yaml`, `sweeps/lr_hyperband.yaml`.
"""

TRACKING_TEXT = """
The optional `tracking` section mirrors every run a worker executes to experiment trackers, beside
its Parquet row. It says where results are mirrored, not what is computed: it is in no run id, no
study fingerprint and no parameter column, so adding, changing or removing it never refuses a study
nor reruns a run. Each backend is an optional extra: a backend that is not installed exits 2 before
anything is written, with the pip command (`pip install 'vaebench[mlflow]'`, `'vaebench[tensorboard]'`).

```yaml
tracking:
  mlflow: {tracking_uri: sqlite:///mlflow.db, experiment: beta}   # experiment: default the study's name
  tensorboard: {dir: runs/tensorboard}                             # then: tensorboard --logdir runs/tensorboard
```

- `--track URI` on `vaebench run` and `vaebench worker` (repeatable) sets one backend over the spec's:
  `tensorboard:DIR` is TensorBoard; `mlflow:URI` or any other URI is an MLflow tracking URI
  (`sqlite:///mlflow.db`, `http://127.0.0.1:5000`, `file:///tmp/mlruns`), its experiment the study's
  name; `--track none` turns tracking off. `vaebench run` gives its workers what it resolved; a
  `vaebench worker` started alone takes the section stored with the study, then its own `--track`.
- **MLflow**: one parent run per study (tag `vaebench.kind = study`), one nested run per vaebench run
  (tag `mlflow.parentRunId`). Params: the run's resolved config flattened (`model.latent_dim`, …);
  metrics: each epoch's history fields (`train_loss`, `val_loss`, `kl_weight`, …) at step = epoch, then
  every scalar column of the row (`neg_elbo`, `fid`, `train_seconds`, …); tags `vaebench.run_id`,
  `vaebench.study`, `vaebench.cell`, `vaebench.seed`, `vaebench.version`, `vaebench.spec_fingerprint`,
  `vaebench.status`; artifacts `row.json` and the weights (`model/<run_id>.pt`). A retried or resumed
  run continues the MLflow run with its `vaebench.run_id` tag: no second run, no epoch logged twice.
- **TensorBoard**: one event-file folder per run, `DIR/<study>/<run_id>/`: scalars `epoch/<field>` at
  step = epoch, `final/<column>` for the row's scalars, and an hparams summary (the cell's grid values
  and the seed against the `final/*` metrics) for the HParams tab.
- A tracker that fails while runs train (a server down mid-sweep) never costs a row: the failure is
  logged, the backend is skipped for the rest of that run (the next run tries again), and the row's
  `tracking_error` column says what failed (null when every tracker took the run; the column exists
  only in the rows of tracked runs).
"""


# ---------------------------------------------------------------------------------------------
# the document


def _section_models(spec):
    """(key, model) of the spec's fields whose annotation is a pydantic model, declaration order."""
    return [(name, f.annotation) for name, f in spec.model_fields.items() if _is_model(f.annotation)]


def _nested_models(ann, seen=None):
    """Pydantic models reachable through an annotation (lists, mappings, unions, Annotated)."""
    seen = [] if seen is None else seen
    if _is_model(ann):
        if ann not in seen:
            seen.append(ann)
        return seen
    for arg in typing.get_args(ann):
        _nested_models(arg, seen)
    return seen


def _family_section(title: str, section_key: str, section_model, registry, text: str, registries) -> list[str]:
    out = [
        f"## `{section_key}`",
        "",
        text.strip(),
        "",
        "Keys of every " + title + ":",
        "",
        field_table(section_model, registries=registries, notes=TOP_NOTES),
    ]
    groups: dict[int, list[str]] = {}
    options = {}
    for name in builtin_names(registry):
        entry = registry.get(name)
        groups.setdefault(id(entry.options), []).append(name)
        options[id(entry.options)] = entry.options
    out += [
        f"### The {title} families and their options",
        "",
        f"A family's own options go beside `name` (`{section_key}: {{name: …, option: value}}`).",
        "",
    ]
    for key in sorted(groups, key=lambda k: groups[k]):
        names = groups[key]
        out.append("#### " + ", ".join(code(n) for n in names))
        out.append("")
        for n in names:
            entry = registry.get(n)
            line = f"- {code(n)}: {entry.doc}" if getattr(entry, "doc", "") else f"- {code(n)}"
            if getattr(entry, "kl_per_dim", True) is False:
                line += " (its KL does not decompose by latent dimension: no `free_bits`, no `kl_per_dim`)"
            out.append(line)
        out += ["", options_table(options[key])]
    return out


def render() -> str:
    spec = public("SweepSpec")
    registries = {
        "dataset": public("DATASETS"),
        "model": public("MODELS"),
        "likelihood": public("LIKELIHOODS"),
        "estimator": public("ESTIMATORS"),
        "schedule": public("SCHEDULES"),
        "sampler": public("SAMPLERS"),
        "pruner": public("PRUNERS"),
    }
    metrics = public("METRICS")
    declared = public("declared_columns")()
    sections = dict(_section_models(spec))

    out = [
        HEADER.strip(),
        "",
        "## Top level",
        "",
        "| key | type | constraint | default | description |",
        "|---|---|---|---|---|",
    ]
    for name, field in spec.model_fields.items():
        if name in sections:
            out.append(f"| {code(name)} | section | | its fields' defaults | [below](#{name}) |")
        else:
            out += field_rows(spec, names={name}, registries=registries, notes=TOP_NOTES)
    out.append("")

    for key, model in sections.items():
        if key == "dataset":
            out += _family_section("dataset", key, model, registries["dataset"], DATASET_TEXT, registries)
        elif key == "model":
            out += _family_section("model", key, model, registries["model"], MODEL_TEXT, registries)
        elif key == "search":
            out += _search_section(model, registries, declared)
        elif key == "tracking":
            out += ["## `tracking`", "", TRACKING_TEXT.strip(), "", field_table(model, registries=registries)]
            for name, field in model.model_fields.items():
                for sub in _nested_models(field.annotation):
                    out += [f"### `tracking.{name}`", "", field_table(sub, registries=registries)]
        else:
            before = {"train": TRAIN_TEXT, "eval": EVAL_TEXT}.get(key, "")
            after = {"objective": OBJECTIVE_TEXT, "schedule": SCHEDULE_TEXT}.get(key, "")
            out += [f"## `{key}`", ""] + ([before.strip(), ""] if before else [])
            out.append(field_table(model, registries=registries, notes=TOP_NOTES))
            out += [after.strip(), ""] if after else []
            if key == "schedule":
                out += ["| schedule | reads |", "|---|---|"]
                for name in builtin_names(registries["schedule"]):
                    fields = getattr(registries["schedule"].get(name), "fields", ())
                    out.append(f"| {code(name)} | {', '.join(code(f) for f in fields) or '(nothing)'} |")
                out.append("")
            if key == "eval":
                out += _metric_options(metrics)
    out += _metrics_section(metrics)
    out += _sweeps_section()
    return "\n".join(out).rstrip() + "\n"


def _metric_options(metrics) -> list[str]:
    out = []
    for name in builtin_names(metrics):
        options = metrics.get(name).options
        if options is None:
            continue
        out += [f"### `eval.{name}`", "", f"Options of the metric `{name}`.", "", field_table(options)]
    return out


def _search_section(model, registries, declared) -> list[str]:
    out = ["## `search`", "", SEARCH_TEXT.strip(), "", field_table(model, registries=registries, notes=TOP_NOTES)]
    done = {model}
    for name, field in model.model_fields.items():
        name = field.alias or name
        for sub in _nested_models(field.annotation):
            if sub in done:
                continue
            done.add(sub)
            title = f"`search.{name}`" + (
                f" entries `{_model_title(sub)}`"
                if name == "space"
                else " entries"
                if typing.get_origin(field.annotation) is list
                else ""
            )
            out += [f"### {title}", "", field_table(sub, registries=registries, notes=TOP_NOTES)]
            if name == "objectives":
                builtin = set(builtin_names(public("METRICS")))
                targets = [c for c, (m, col) in declared.items() if col.target and m in builtin]
                out += [
                    "Metric columns a search may optimize (scalar, with a direction): "
                    + ", ".join(code(c) for c in sorted(targets))
                    + ".",
                    "",
                ]
    out += ["### Samplers", "", "| sampler | what |", "|---|---|"]
    for name in builtin_names(registries["sampler"]):
        out.append(f"| {code(name)} | {cell(getattr(registries['sampler'].get(name), 'doc', ''))} |")
    out += ["", "### Pruners", "", "| pruner | reads | what |", "|---|---|---|"]
    for name in builtin_names(registries["pruner"]):
        entry = registries["pruner"].get(name)
        fields = ", ".join(code(f) for f in getattr(entry, "fields", ())) or "(nothing)"
        out.append(f"| {code(name)} | {fields} | {cell(getattr(entry, 'doc', ''))} |")
    out.append("")
    return out


def _metrics_section(metrics) -> list[str]:
    out = [
        "## Metrics and their columns",
        "",
        "Every metric runs on the test split after training and fills the result columns it declares "
        "(type, unit, which way is better). A metric that cannot apply leaves its columns null and says "
        "why in `metrics_skipped`; each metric's wall time is `eval_seconds_<metric>`. Exact definitions: "
        "[metrics.md](metrics.md).",
        "",
    ]
    for name in builtin_names(metrics):
        m = metrics.get(name)
        out += [
            f"### `{name}`",
            "",
            oneline(m.doc),
            "",
            "| column | type | unit | better | description |",
            "|---|---|---|---|---|",
        ]
        for c in m.columns:
            better = {"lower": "lower", "higher": "higher"}.get(c.direction, "")
            out.append(f"| {code(c.name)} | {c.dtype} | {cell(c.unit)} | {better} | {cell(c.doc)} |")
        if m.options is not None:
            out += ["", f"Options: [`eval.{name}`](#eval{name})."]
        if getattr(m, "settings", None) is not None:
            names = list(m.settings.model_fields)
            out += [
                "",
                f"Options: the eval settings {', '.join(code(s) for s in names)} ([`eval`](#eval); also "
                f"given as `eval: {{{name}: {{{names[0]}: …}}}}`).",
            ]
        out.append("")
    return out


def _n_runs(doc: dict) -> str:
    search = doc.get("search") or {}
    if search.get("sampler", "grid") != "grid":
        return f"{search.get('n_trials')} trials ({search['sampler']})"
    n = 1
    for values in (doc.get("grid") or {}).values():
        n *= len(values)
    return str(n * len(doc.get("seeds") or [0]))


def _sweeps_section() -> list[str]:
    import yaml

    out = [
        "## Shipped sweeps",
        "",
        "The specs in `sweeps/` (their comments explain each choice; measured times are in [history.md](history.md)):",
        "",
        "| spec | study | runs | description |",
        "|---|---|---|---|",
    ]
    for path in sorted(SWEEPS.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text()) or {}
        out.append(
            f"| `sweeps/{path.name}` | {code(doc.get('study', ''))} | {_n_runs(doc)} | "
            f"{cell(doc.get('description', ''))} |"
        )
    out.append("")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if docs/spec.md differs from what would be written")
    args = ap.parse_args(argv)
    text = render()
    if args.check:
        current = OUT.read_text() if OUT.is_file() else ""
        if current != text:
            diff = "".join(
                difflib.unified_diff(
                    current.splitlines(True),
                    text.splitlines(True),
                    "docs/spec.md (committed)",
                    "docs/spec.md (generated)",
                    n=1,
                )
            )
            print(f"docs/spec.md is stale: regenerate it with `{REGENERATE}`\n{diff[:4000]}", file=sys.stderr)
            return 1
        print("docs/spec.md is up to date")
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT.relative_to(ROOT)} ({len(text.encode())} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
