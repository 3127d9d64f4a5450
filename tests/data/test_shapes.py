"""The `shapes` dataset (vaebench/data/shapes.py): deterministic rendering of the full factor grid, the cache,
the geometry of the shapes against independent references, the splits, and every architecture and
the CLI on a tiny grid."""

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import vaebench.data.shapes as shapes_mod
from vaebench.cli.commands import app
from vaebench.data import DATASETS, dataset_from_arrays, load_dataset
from vaebench.data.shapes import (
    HEART_CENTROID_Y,
    HEART_RADIUS,
    SHAPES,
    load_shapes,
    render_shapes,
    shapes_cache_path,
    shapes_factor_values,
    shapes_images,
)
from vaebench.engine.train import train
from vaebench.metrics import column_names as C
from vaebench.models import MODELS
from vaebench.spec.sweep_spec import DatasetConfig, RunConfig

TINY = {"image_size": 16, "scales": 2, "orientations": 2, "positions": 4}  # 3 * 2 * 2 * 4^2 = 192 images


def tiny_cfg(**kw) -> DatasetConfig:
    return DatasetConfig(name="shapes", **{**TINY, **kw})


def grid_sizes(scales, orientations, positions):
    return (3, scales, orientations, positions, positions)


def flat_index(factors: np.ndarray, sizes) -> np.ndarray:
    """Row i of the C-order grid for each factor row."""
    return np.ravel_multi_index(tuple(np.asarray(factors).T), sizes)


# ---- rendering and the factor grid --------------------------------------------------------------


def test_rendering_is_deterministic_and_byte_identical():
    a = render_shapes(32, 3, 4, 5)
    b = render_shapes(32, 3, 4, 5)
    assert a.dtype == np.uint8 and a.shape == (3 * 3 * 4 * 25, 32, 32)
    assert a.tobytes() == b.tobytes()
    assert a.max() == 255 and a.min() == 0  # full-coverage pixels inside, black background


@pytest.mark.parametrize("grid", [(16, 1, 1, 1), (16, 2, 2, 4), (20, 3, 1, 2), (32, 1, 5, 3), (64, 2, 3, 2)])
def test_image_count_is_the_size_of_the_grid(grid):
    size, scales, orientations, positions = grid
    images = render_shapes(*grid)
    assert images.shape == (3 * scales * orientations * positions**2, size, size)
    # no shape touches the border: the largest one fits at the extreme positions
    assert images[:, 0, :].max() == images[:, -1, :].max() == images[:, :, 0].max() == images[:, :, -1].max() == 0
    assert (images.reshape(len(images), -1).sum(1) > 0).all()  # and every image shows a shape


def test_factor_values():
    v = shapes_factor_values(64, 6, 40, 32)
    assert v["shape"] == ["square", "ellipse", "heart"] == list(SHAPES)
    assert v["scale"] == pytest.approx([0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    # orientations: n values over each shape's symmetry period, from 0, evenly spaced
    for shape, period in [("square", math.pi / 2), ("ellipse", math.pi), ("heart", 2 * math.pi)]:
        assert v["orientation"][shape] == pytest.approx([k * period / 40 for k in range(40)])
    # positions: evenly spaced, symmetric about the centre, the largest shape (radius 0.2 * 64 = 12.8)
    # plus a 1 pixel margin away from both edges
    assert v["x"] == v["y"]
    assert v["x"][0] == pytest.approx(13.8) and v["x"][-1] == pytest.approx(64 - 13.8) and len(v["x"]) == 32
    assert np.allclose(np.diff(v["x"]), (64 - 2 * 13.8) / 31)
    one = shapes_factor_values(32, 1, 1, 1)
    assert one["scale"] == [1.0] and one["x"] == one["y"] == [16.0] and one["orientation"]["heart"] == [0.0]


def test_factor_rows_are_the_full_product_in_c_order():
    cfg = tiny_cfg()
    ds = load_shapes(cfg)
    sizes = grid_sizes(2, 2, 4)
    assert [(f.name, f.size, f.categorical) for f in ds.factors] == [
        ("shape", 3, True),
        ("scale", 2, False),
        ("orientation", 2, False),
        ("x", 4, False),
        ("y", 4, False),
    ]
    rows = torch.cat([ds.factors_train, ds.factors_test]).numpy()
    assert rows.dtype == np.int64 and rows.shape == (192, 5)
    # every grid point exactly once
    assert sorted(map(tuple, rows)) == list(itertools.product(*(range(s) for s in sizes)))
    # each factor column takes each of its values equally often, and the label is the shape
    for k, s in enumerate(sizes):
        assert np.array_equal(np.bincount(rows[:, k], minlength=s), np.full(s, 192 // s))
    assert torch.equal(ds.y_train, ds.factors_train[:, 0]) and torch.equal(ds.y_test, ds.factors_test[:, 0])
    # image i of the rendered grid is the grid point of row i in C order (y fastest, then x, ...)
    images = render_shapes(16, 2, 2, 4)
    for x, f in [(ds.x_train, ds.factors_train), (ds.x_test, ds.factors_test)]:
        expected = torch.from_numpy(images[flat_index(f.numpy(), sizes)]).float().div(255).unsqueeze(1)
        assert torch.equal(x, expected)
    # and C order means: moving one step along y moves the shape one position down (rows), along x right
    values = shapes_factor_values(16, 2, 2, 4)
    grid = images.reshape(*sizes, 16, 16).astype(float)
    cols, rows_ = np.arange(16) + 0.5, np.arange(16) + 0.5
    for xi, yi in [(0, 3), (3, 0), (1, 2)]:
        im = grid[1, 1, 0, xi, yi]
        assert (im.sum(0) * cols).sum() / im.sum() == pytest.approx(values["x"][xi], abs=0.1)
        assert (im.sum(1) * rows_).sum() / im.sum() == pytest.approx(values["y"][yi], abs=0.1)


def test_checksum_changes_with_the_grid_parameters():
    base = load_dataset(tiny_cfg())
    assert load_dataset(tiny_cfg()).checksum == base.checksum  # stable
    others = [
        tiny_cfg(image_size=20),
        tiny_cfg(scales=3),
        tiny_cfg(orientations=3),
        tiny_cfg(positions=3),
        tiny_cfg(test_fraction=0.5),
    ]
    sums = {base.checksum} | {load_dataset(c).checksum for c in others}
    assert len(sums) == 1 + len(others)
    # the cache file is keyed by the grid too
    paths = {shapes_cache_path(*g) for g in [(16, 2, 2, 4), (20, 2, 2, 4), (16, 3, 2, 4), (16, 2, 3, 4), (16, 2, 2, 3)]}
    assert len(paths) == 5
    assert shapes_cache_path(16, 2, 2, 4) == shapes_cache_path(16, 2, 2, 4)


def test_the_factor_tensors_are_part_of_the_checksum():
    ds = load_dataset(tiny_cfg())
    same_images = dataset_from_arrays("shapes", ds.x_train, ds.y_train, ds.x_test, ds.y_test)
    assert same_images.checksum != ds.checksum
    swapped = dataset_from_arrays(
        "shapes",
        ds.x_train,
        ds.y_train,
        ds.x_test,
        ds.y_test,
        ds.factors_train.flip(1),
        ds.factors_test.flip(1),
        ds.factors,
    )
    assert swapped.checksum != ds.checksum


def test_no_two_images_of_the_grid_are_equal():
    # orientations cover each shape's symmetry period once: a square turned by pi/2 would repeat
    for grid in [(32, 3, 6, 3), (64, 2, 8, 2), (16, 2, 2, 4)]:
        images = render_shapes(*grid)
        assert len(np.unique(images.reshape(len(images), -1), axis=0)) == len(images), grid


# ---- the cache -------------------------------------------------------------------------------


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VAEBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


GRID = (16, 2, 2, 4)


def _no_render(*a, **k):
    raise AssertionError("rendered although the cache holds the images")


def test_images_come_from_the_cache_and_equal_a_fresh_render(cache, monkeypatch):
    path = shapes_cache_path(*GRID)
    assert path.parent == cache / "datasets" and path.name.startswith("shapes-16px-") and path.suffix == ".npz"
    assert not path.exists()
    first = shapes_images(*GRID)
    assert path.is_file() and path.with_suffix(".json").is_file()
    assert np.array_equal(first, render_shapes(*GRID))
    monkeypatch.setattr(shapes_mod, "render_shapes", _no_render)
    cached = shapes_images(*GRID)
    assert cached.dtype == np.uint8 and cached.tobytes() == first.tobytes()
    # the dataset built from the cache is the one built from a render
    monkeypatch.undo()
    monkeypatch.setenv("VAEBENCH_CACHE", str(cache))
    from_cache = load_shapes(tiny_cfg())
    monkeypatch.setenv("VAEBENCH_CACHE", str(cache.parent / "other-cache"))
    rendered = load_shapes(tiny_cfg())
    assert from_cache.checksum == rendered.checksum and torch.equal(from_cache.x_test, rendered.x_test)


def test_a_cached_file_that_fails_its_sha256_is_rendered_again(cache, monkeypatch):
    good = shapes_images(*GRID)
    path = shapes_cache_path(*GRID)
    with np.load(path) as f:
        images, sha = f["images"].copy(), str(f["sha256"])
    images[5, 8, 8] ^= 0xFF  # one pixel changed; the file itself is a valid npz with the old checksum
    np.savez_compressed(path, images=images, sha256=np.array(sha))
    with pytest.warns(UserWarning, match="fail their checksum"):
        again = shapes_images(*GRID)
    assert again.tobytes() == good.tobytes()
    # and the cache was repaired: the next call reads it without rendering
    monkeypatch.setattr(shapes_mod, "render_shapes", _no_render)
    assert shapes_images(*GRID).tobytes() == good.tobytes()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_a_truncated_or_unreadable_cached_file_is_rendered_again(cache, monkeypatch, damage):
    good = shapes_images(*GRID)
    path = shapes_cache_path(*GRID)
    raw = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(raw[:40] + bytes(255 - b for b in raw[40:]))
    else:
        path.write_bytes(b"")
    again = shapes_images(*GRID)
    assert again.tobytes() == good.tobytes()
    monkeypatch.setattr(shapes_mod, "render_shapes", _no_render)
    assert shapes_images(*GRID).tobytes() == good.tobytes()


# ---- geometry, against independent references ----------------------------------------------------

G_SIZE, G_SCALES, G_ORIENT, G_POS = 64, 3, 4, 3


@pytest.fixture(scope="module")
def geometry():
    images = render_shapes(G_SIZE, G_SCALES, G_ORIENT, G_POS).astype(np.float64) / 255.0
    grid = images.reshape(3, G_SCALES, G_ORIENT, G_POS, G_POS, G_SIZE, G_SIZE)
    return grid, shapes_factor_values(G_SIZE, G_SCALES, G_ORIENT, G_POS)


def _centre_coords():
    # pixel (i, j) covers [j, j + 1) x [i, i + 1): its centre is (j + 0.5, i + 0.5), x right, y down
    return np.meshgrid(np.arange(G_SIZE) + 0.5, np.arange(G_SIZE) + 0.5)


def _centroid(im):
    xs, ys = _centre_coords()
    m = im.sum()
    return (im * xs).sum() / m, (im * ys).sum() / m


def heart_region(x, y):
    """The heart curve's region, (x^2 + y^2 - 1)^3 - x^2 y^3 <= 0 (y up): written here, not imported."""
    return (x**2 + y**2 - 1) ** 3 <= x**2 * y**3


@pytest.fixture(scope="module")
def heart_reference():
    """Area, centroid and farthest point from the centroid of the heart region, by a fine grid."""
    h = 0.002
    xs = np.arange(-1.5, 1.5, h) + h / 2
    ys = np.arange(-1.5, 1.5, h) + h / 2
    x, y = np.meshgrid(xs, ys)
    inside = heart_region(x, y)
    area = inside.sum() * h * h
    cx, cy = x[inside].mean(), y[inside].mean()
    far = np.sqrt((x[inside] - cx) ** 2 + (y[inside] - cy) ** 2).max()
    return area, cx, cy, far


@pytest.mark.slow
def test_heart_constants_match_the_region(heart_reference):
    area, cx, cy, far = heart_reference
    assert cx == pytest.approx(0, abs=1e-6)
    assert cy == pytest.approx(HEART_CENTROID_Y, abs=1e-3)
    assert area == pytest.approx(3.662, abs=0.005)  # the region's area (a fine-grid count)
    # the farthest point from the centroid is the tip (0, -1), at 1 + centroid: the renderer's unit radius.
    # The tip is a cusp too thin for the grid (width ~ (2e)^1.5 at e above the tip): measure along rays
    # from the centroid, each sampled finely, straight down included
    assert heart_region(0.0, -1.0) and not heart_region(0.0, -1.0 - 1e-9)
    theta = np.linspace(-math.pi, math.pi, 3601)  # includes -pi/2 exactly
    rho = np.linspace(0, 1.5, 15001)
    inside = heart_region(np.cos(theta)[:, None] * rho, cy + np.sin(theta)[:, None] * rho)
    reach = np.where(inside, rho, 0).max(1)
    assert theta[reach.argmax()] == pytest.approx(-math.pi / 2)
    assert reach.max() == pytest.approx(HEART_RADIUS, abs=1e-3) and far <= HEART_RADIUS + 1e-3


def test_the_centroid_of_each_shape_is_its_position(geometry):
    grid, values = geometry
    worst = {}
    for si, shape in enumerate(SHAPES):
        for a, b, xi, yi in itertools.product(range(G_SCALES), range(G_ORIENT), range(G_POS), range(G_POS)):
            cx, cy = _centroid(grid[si, a, b, xi, yi])
            err = max(abs(cx - values["x"][xi]), abs(cy - values["y"][yi]))
            worst[shape] = max(worst.get(shape, 0.0), err)
    # the symmetric shapes within a tenth of a pixel; the heart, centred on its area centroid, too
    assert worst["square"] < 0.1 and worst["ellipse"] < 0.1
    assert worst["heart"] < 0.15


def test_pixel_mass_is_the_shapes_area(geometry, heart_reference):
    grid, values = geometry
    r = 0.2 * G_SIZE  # the radius of a scale-1 shape: its farthest point from the centroid
    mass = grid.sum((-1, -2))  # (shape, scale, orientation, x, y), in pixels
    scales = np.array(values["scale"])
    expected = {
        "square": 2 * r * r,  # side sqrt(2) r: corners at radius r
        "ellipse": math.pi * r * r / 2,  # semi-axes r and r / 2
        "heart": heart_reference[0] * (r / HEART_RADIUS) ** 2,
    }
    for si, shape in enumerate(SHAPES):
        for a, s in enumerate(scales):
            area = expected[shape] * s * s
            # every orientation and position: the same area within 1.5% (anti-aliased edges)
            assert np.allclose(mass[si, a], area, rtol=0.015), (shape, s)
        # mass grows as scale^2
        mean = mass[si].mean((1, 2, 3))
        assert np.allclose(mean / mean[-1], scales**2 / scales[-1] ** 2, rtol=0.01), shape


def test_orientation_turns_the_ellipse_anticlockwise(geometry):
    grid, values = geometry
    xs, ys = _centre_coords()
    for a, b in itertools.product(range(G_SCALES), range(G_ORIENT)):
        im = grid[1, a, b, 1, 1]
        cx, cy = _centroid(im)
        u, v = xs - cx, cy - ys  # v up
        m = im.sum()
        cuu, cvv, cuv = (im * u * u).sum() / m, (im * v * v).sum() / m, (im * u * v).sum() / m
        angle = 0.5 * math.atan2(2 * cuv, cuu - cvv)  # the major principal axis
        diff = (angle - values["orientation"]["ellipse"][b]) % math.pi
        assert min(diff, math.pi - diff) < 0.02, (a, b)
        # the semi-axes ratio 2 : 1: eigenvalues of the second moments 4 : 1
        lo, hi = np.linalg.eigvalsh([[cuu, cuv], [cuv, cvv]])
        assert hi / lo == pytest.approx(4, rel=0.1)


def test_orientation_turns_the_square_and_the_heart():
    images = render_shapes(64, 1, 2, 1).astype(np.float64) / 255.0  # square orientations: 0, pi/4
    sq0, sq45 = images[0], images[1]
    r = 0.2 * 64

    def width(im):
        cols = np.nonzero(im.max(0) >= 0.5)[0]
        return cols[-1] - cols[0] + 1

    assert abs(width(sq0) - math.sqrt(2) * r) <= 1.5  # axis-aligned: the side
    assert abs(width(sq45) - 2 * r) <= 2  # a diamond: the diagonal
    # the heart's tip, its farthest point from the centroid (the cusp is thin: any coverage counts),
    # points down at orientation 0 and turns anticlockwise: right at pi/2, up at pi, left at 3 pi/2
    hearts = render_shapes(64, 1, 4, 1).astype(np.float64)[8:] / 255.0
    xs, ys = np.meshgrid(np.arange(64) + 0.5, np.arange(64) + 0.5)
    for k, im in enumerate(hearts):
        m = im.sum()
        cx, cy = (im * xs).sum() / m, (im * ys).sum() / m
        lit = im > 0
        d = np.hypot(xs - cx, ys - cy)[lit]
        du, dv = xs[lit][d.argmax()] - cx, cy - ys[lit][d.argmax()]  # v up
        assert d.max() == pytest.approx(r, abs=1.0)
        diff = (math.atan2(dv, du) - (-math.pi / 2 + k * math.pi / 2)) % (2 * math.pi)
        assert min(diff, 2 * math.pi - diff) < 0.1, k


# ---- splits and load_dataset ------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.25, 0.5, 0.1])
def test_splits_are_disjoint_cover_the_grid_and_respect_the_fraction(fraction):
    ds = load_dataset(tiny_cfg(test_fraction=fraction))
    sizes = grid_sizes(2, 2, 4)
    tr, te = flat_index(ds.factors_train.numpy(), sizes), flat_index(ds.factors_test.numpy(), sizes)
    assert len(set(tr)) == len(tr) and len(set(te)) == len(te)
    assert not set(tr) & set(te)
    assert set(tr) | set(te) == set(range(192))
    assert len(te) == round(192 * fraction)
    assert len(ds.x_train) == len(tr) and len(ds.x_test) == len(te)
    # a random sample of the grid, not a block of it: the test split holds every shape
    assert set(ds.factors_test[:, 0].tolist()) == {0, 1, 2}


def test_a_fraction_that_empties_a_split_is_refused():
    from vaebench.errors import DataError

    with pytest.raises(DataError, match="empty split"):
        load_dataset(
            DatasetConfig(name="shapes", image_size=16, scales=1, orientations=1, positions=1, test_fraction=0.1)
        )


def test_load_dataset_returns_factors_and_binarize_keeps_them():
    cfg = tiny_cfg()
    ds = load_dataset(cfg)
    assert DATASETS.get("shapes").load is load_shapes
    assert ds.name == "shapes" and ds.has_factors and ds.shape == (1, 16, 16) and ds.num_classes == 3
    assert ds.factors_train.shape == (144, 5) and ds.factors_test.shape == (48, 5)
    assert ds.x_train.dtype == torch.float32 and 0 <= ds.x_train.min() and ds.x_train.max() == 1
    b = load_dataset(tiny_cfg(binarize=True))
    assert b.has_factors and b.factors == ds.factors
    assert torch.equal(b.factors_train, ds.factors_train) and torch.equal(b.factors_test, ds.factors_test)
    assert set(b.x_test.unique().tolist()) == {0.0, 1.0} and torch.equal(b.x_train, ds.x_train)
    assert b.checksum != ds.checksum


# ---- training and the CLI -----------------------------------------------------------------------

SMALL_MODEL = {
    "mlp": {"hidden_dim": 32, "latent_dim": 4},
    "cvae": {"hidden_dim": 32, "latent_dim": 4},
    "conv": {"channels": [8, 16], "latent_dim": 4},
    "resnet": {"channels": [8, 16], "latent_dim": 4},
    "ladder": {"latent_dims": [3, 1], "hidden_dims": [32, 16], "latent_dim": 4},
    "vqvae": {"channels": [8, 16], "latent_dim": 4, "num_embeddings": 16},
}


@pytest.mark.parametrize("name", sorted(SMALL_MODEL))
def test_every_architecture_trains_on_shapes(name):
    assert set(SMALL_MODEL) == {n for n in MODELS.names() if MODELS.get(n).build.__module__.startswith("vaebench.")}
    cfg = RunConfig.model_validate(
        {
            "dataset": {"name": "shapes", **TINY},
            "model": {"name": name, **SMALL_MODEL[name]},
            "train": {"epochs": 1, "batch_size": 32},
        }
    )
    data = load_dataset(cfg.dataset)
    res = train(cfg, data, seed=0, device="cpu")
    assert res.status == "ok" and len(res.history) == 1
    assert all(math.isfinite(res.history[0][k]) for k in ("train_loss", "test_loss", "train_kl", "test_recon"))
    mu, logvar = res.model.encode(data.x_test, data.y_test)
    assert mu.shape == (48, res.model.latent_dim) and torch.isfinite(mu).all()  # vqvae: the flattened code grid


def test_a_shapes_sweep_through_the_cli_writes_disentanglement_columns(tmp_path, write_spec):
    spec = {
        "study": "shapes-tiny",
        "dataset": {"name": "shapes", **TINY},
        "model": {"name": "mlp", "hidden_dim": 32, "latent_dim": 4},
        "train": {"epochs": 1, "batch_size": 32},
        "eval": {
            "fid_extractor": None,
            "nll_k": 4,
            "nll_examples": 16,
            "mig_samples": 40,
            "sap_train_samples": 30,
            "sap_test_samples": 10,
        },
        "grid": {"objective.beta": [1.0, 4.0]},
        "seeds": [0],
    }
    results = tmp_path / "results"
    r = CliRunner().invoke(app, ["run", str(write_spec(spec)), "-q", "--results", str(results)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    df = pd.read_parquet(results / "shapes-tiny" / "runs")
    assert len(df) == 2 and (df["status"] == "ok").all()
    assert df["dataset"].eq("shapes").all() and df["dataset_checksum"].nunique() == 1
    assert df["dataset_checksum"].iloc[0] == load_dataset(tiny_cfg()).checksum
    for col in (C.MIG, C.SAP):
        assert df[col].notna().all() and df[col].between(0, 1).all(), col
    for _, row in df.iterrows():
        assert list(row[C.DISENTANGLEMENT_FACTORS]) == ["shape", "scale", "orientation", "x", "y"]
        assert len(row[C.MIG_PER_FACTOR]) == len(row[C.SAP_PER_FACTOR]) == 5
        assert row[C.MIG] == pytest.approx(np.mean(row[C.MIG_PER_FACTOR]))
        assert row[C.SAP] == pytest.approx(np.mean(row[C.SAP_PER_FACTOR]))
    assert df[C.MIG_SAMPLES].eq(40).all() and df[C.MIG_BINS].eq(20).all()
    assert df[C.SAP_TRAIN_SAMPLES].eq(30).all() and df[C.SAP_TEST_SAMPLES].eq(10).all()
    assert df[C.DISENTANGLEMENT_SEED].eq(0).all()
    assert df["param.dataset.image_size"].eq(16).all() and df["param.dataset.positions"].eq(4).all()
    assert sorted(df["param.objective.beta"]) == [1.0, 4.0]
