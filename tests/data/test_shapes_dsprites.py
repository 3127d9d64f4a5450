"""`shapes` with dSprites' factor grid (`preset: dsprites`, vaebench/data/shapes.py): the preset's
resolved options, dSprites' orientation values and binary pixels against references written out
here (dSprites' own metadata, plain geometry), each axis of the grid at the preset's size, the
errors of bad options, and the default grids unchanged (cache keys, rendered bytes, the committed
disentanglement study's dataset checksum)."""

import hashlib
import math

import numpy as np
import pytest
from typer.testing import CliRunner

from vaebench.cli.commands import app
from vaebench.data import load_dataset
from vaebench.data.shapes import SHAPES, render_shapes, shapes_cache_path, shapes_factor_values
from vaebench.errors import SpecError
from vaebench.spec.sweep_spec import DatasetConfig, load_spec

# dSprites' metadata (dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz, `latents_possible_values`,
# printed to 8 decimals): the 40 orientations and the 6 scales
DSPRITES_ORIENTATIONS = [
    0.0, 0.16110732, 0.32221463, 0.48332195, 0.64442926, 0.80553658, 0.96664389, 1.12775121,
    1.28885852, 1.44996584, 1.61107316, 1.77218047, 1.93328779, 2.0943951, 2.25550242, 2.41660973,
    2.57771705, 2.73882436, 2.89993168, 3.061039, 3.22214631, 3.38325363, 3.54436094, 3.70546826,
    3.86657557, 4.02768289, 4.1887902, 4.34989752, 4.51100484, 4.67211215, 4.83321947, 4.99432678,
    5.1554341, 5.31654141, 5.47764873, 5.63875604, 5.79986336, 5.96097068, 6.12207799, 6.28318531,
]  # fmt: skip
DSPRITES_SCALES = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
DSPRITES_OPTIONS = {
    "image_size": 64,
    "scales": 6,
    "orientations": 40,
    "positions": 32,
    "orientation_values": "dsprites",
    "pixels": "binary",
}


def shapes_cfg(**kw) -> DatasetConfig:
    return DatasetConfig.model_validate({"name": "shapes", **kw})


# ---- the preset --------------------------------------------------------------------------------


def test_the_preset_sets_dsprites_grid_of_737280_images():
    cfg = shapes_cfg(preset="dsprites")
    opts = cfg.family_options()
    assert {k: getattr(opts, k) for k in DSPRITES_OPTIONS} == DSPRITES_OPTIONS
    assert opts.preset is None and opts.test_fraction == 0.25  # expanded, then cleared
    assert 3 * opts.scales * opts.orientations * opts.positions**2 == 737_280  # dSprites' image count
    # the runs record the options themselves: the preset and the options written out are the same runs
    assert cfg.model_dump(exclude_defaults=True) == shapes_cfg(**DSPRITES_OPTIONS).model_dump(exclude_defaults=True)


def test_keys_beside_the_preset_override_it_and_survive_a_round_trip():
    cfg = shapes_cfg(preset="dsprites", pixels="antialiased", positions=4)
    opts = cfg.family_options()
    assert (opts.pixels, opts.positions, opts.image_size, opts.orientation_values) == (
        "antialiased",
        4,
        64,
        "dsprites",
    )
    # serialized without defaults (run ids, saved configs) and read back: the same options, although
    # `pixels: antialiased` is the default that the serialization leaves out and the preset would change
    again = DatasetConfig.model_validate(cfg.model_dump(exclude_defaults=True))
    assert again.model_dump() == cfg.model_dump()


# ---- dSprites' factor values, per axis at the preset's size -----------------------------------------


def test_dsprites_orientations_are_dsprites_own_values():
    v = shapes_factor_values(64, 6, 40, 32, orientation_values="dsprites")
    for shape in SHAPES:  # the same 40 angles for every shape: [0, 2 pi], both ends included
        assert v["orientation"][shape] == pytest.approx(DSPRITES_ORIENTATIONS, abs=5e-9)
        assert v["orientation"][shape][0] == 0.0 and v["orientation"][shape][-1] == 2 * math.pi
    assert v["scale"] == pytest.approx(DSPRITES_SCALES)
    assert len(v["x"]) == len(v["y"]) == 32
    # the default convention is unchanged: 40 angles over each shape's symmetry period, end excluded
    period = shapes_factor_values(64, 6, 40, 32)["orientation"]
    assert period["heart"] == pytest.approx([k * 2 * math.pi / 40 for k in range(40)])
    assert period["square"][-1] == pytest.approx(39 * (math.pi / 2) / 40)


def test_forty_dsprites_orientations_render_with_0_and_2pi_the_same_picture():
    images = render_shapes(64, 1, 40, 1, orientation_values="dsprites", pixels="binary").reshape(3, 40, 64, 64)
    assert set(np.unique(images)) == {0, 255}
    for si, shape in enumerate(SHAPES):
        flat = images[si].reshape(40, -1)
        same_as_0 = [k for k in range(40) if np.array_equal(flat[k], flat[0])]
        if shape == "square":  # its period is pi / 2: 10 * 2 pi / 39 = pi / 2 + 0.04 and 29 * 2 pi / 39 = 3 pi / 2
            # - 0.04 turn its corners (12.8 px from the centre) by half a pixel, and give the same binary picture
            assert same_as_0 == [0, 10, 29, 39]
        else:  # ellipse and heart: the 39 angles of [0, 2 pi) are 39 pictures, and 2 pi is 0
            assert same_as_0 == [0, 39], shape
            assert len(np.unique(flat[:39], axis=0)) == 39, shape
    # binary, the whole grid of positions: 3 x 32 x 32 images, every one lit and clear of the border
    grid = render_shapes(64, 1, 1, 32, orientation_values="dsprites", pixels="binary")
    assert grid.shape == (3 * 32 * 32, 64, 64) and set(np.unique(grid)) == {0, 255}
    assert (grid.reshape(len(grid), -1).max(1) == 255).all()
    assert grid[:, 0].max() == grid[:, -1].max() == grid[:, :, 0].max() == grid[:, :, -1].max() == 0


def test_binary_pixels_are_on_when_their_centre_is_inside():
    # scale s, orientation 0: the square is axis-aligned with half side s * 0.2 * 64 * sqrt(1/2)
    # around its position (the centre), so pixel (i, j) is on when its centre (j + 0.5, i + 0.5) is within
    scales, positions = 6, 5
    images = render_shapes(64, scales, 1, positions, pixels="binary").reshape(3, scales, positions, positions, 64, 64)
    v = shapes_factor_values(64, scales, 1, positions)
    centres = np.arange(64) + 0.5
    for a, s in enumerate(v["scale"]):
        half = s * 0.2 * 64 * math.sqrt(0.5)
        for xi, x in enumerate(v["x"]):
            for yi, y in enumerate(v["y"]):
                inside = (np.abs(centres[:, None] - y) <= half) & (np.abs(centres[None, :] - x) <= half)
                assert np.array_equal(images[0, a, xi, yi], np.where(inside, 255, 0)), (s, x, y)
    # the ellipse, semi-axes r and r / 2 (r = s * 12.8): centres with (dx / r)^2 + (2 dy / r)^2 <= 1
    x, y, r = v["x"][2], v["y"][3], v["scale"][-1] * 0.2 * 64
    inside = ((centres[None, :] - x) / r) ** 2 + (2 * (centres[:, None] - y) / r) ** 2 <= 1
    assert np.array_equal(images[1, -1, 2, 3], np.where(inside, 255, 0))


def test_a_reduced_preset_loads_with_its_factors():
    ds = load_dataset(shapes_cfg(preset="dsprites", scales=2, orientations=3, positions=4))
    assert ds.shape == (1, 64, 64)
    assert [(f.name, f.size) for f in ds.factors] == [
        ("shape", 3),
        ("scale", 2),
        ("orientation", 3),
        ("x", 4),
        ("y", 4),
    ]
    assert len(ds.x_train) + len(ds.x_test) == 3 * 2 * 3 * 16 and len(ds.x_test) == 72
    assert set(ds.x_train.unique().tolist()) == {0.0, 1.0}  # binary pixels


# ---- bad options ----------------------------------------------------------------------------------

BAD_OPTIONS = [
    ({"preset": "dsprite"}, "field dataset.preset: Input should be 'dsprites'"),
    ({"pixels": "gray"}, "field dataset.pixels: Input should be 'antialiased' or 'binary'"),
    ({"orientation_values": "full"}, "field dataset.orientation_values: Input should be 'period' or 'dsprites'"),
    ({"preset": "dsprites", "image_size": 300}, "field dataset.image_size: Input should be less than or equal to 256"),
    ({"preset": "dsprites", "orientation": 40}, "'orientation' is not an option of dataset 'shapes'"),
]


@pytest.mark.parametrize("options,expected", BAD_OPTIONS)
def test_a_bad_option_names_the_field(write_spec, options, expected):
    spec = {"study": "bad", "dataset": {"name": "shapes", **options}, "model": {"name": "mlp"}}
    with pytest.raises(SpecError) as info:
        load_spec(write_spec(spec))
    assert expected in str(info.value), str(info.value)


def test_the_cli_exits_2_on_a_bad_preset(tmp_path, write_spec):
    spec = write_spec({"study": "bad", "dataset": {"name": "shapes", "preset": "dsprite"}, "model": {"name": "mlp"}})
    r = CliRunner().invoke(app, ["run", str(spec), "-q", "--results", str(tmp_path / "results")])
    assert r.exit_code == 2, r.output
    assert "dataset.preset" in " ".join(r.output.split())


# ---- the default grids are unchanged -------------------------------------------------------------


def test_default_grids_keep_their_cache_files_and_bytes():
    # the cache file names and render hashes of the default style, as before the dSprites options
    assert shapes_cache_path(32, 6, 10, 16).name == "shapes-32px-03894ab46e1e4690.npz"
    assert shapes_cache_path(16, 2, 2, 4, orientation_values="period", pixels="antialiased").name == (
        "shapes-16px-dcf09059735c907c.npz"
    )
    assert hashlib.sha256(render_shapes(32, 3, 4, 5).tobytes()).hexdigest()[:16] == "7e516033359491a9"
    assert hashlib.sha256(render_shapes(64, 2, 3, 2).tobytes()).hexdigest()[:16] == "77fc5d01cbf95021"
    # and the other styles are other files
    styles = [{}, {"pixels": "binary"}, {"orientation_values": "dsprites"}]
    styles.append({"orientation_values": "dsprites", "pixels": "binary"})
    paths = {shapes_cache_path(16, 2, 2, 4, **style).name for style in styles}
    assert len(paths) == 4


@pytest.mark.slow
def test_the_disentanglement_study_data_is_the_committed_one():
    # sweeps/disentanglement.yaml's dataset; reports/disentanglement.md records this checksum
    cfg = shapes_cfg(image_size=32, scales=6, orientations=10, positions=16)
    assert load_dataset(cfg).checksum == "9296ae23994036b8"


def test_the_splits_converted_a_chunk_at_a_time_equal_one_conversion(monkeypatch):
    import vaebench.data.shapes as shapes_mod

    cfg = shapes_cfg(image_size=16, scales=2, orientations=2, positions=4)
    whole = load_dataset(cfg)
    monkeypatch.setattr(shapes_mod, "SHAPES_CONVERT_CHUNK", 7)  # 144 and 48 images: uneven chunks
    chunked = load_dataset(cfg)
    assert chunked.checksum == whole.checksum
    images = render_shapes(16, 2, 2, 4)
    idx = np.ravel_multi_index(tuple(chunked.factors_test.numpy().T), (3, 2, 2, 4, 4))
    assert np.array_equal(chunked.x_test[:, 0].numpy(), images[idx].astype(np.float32) / np.float32(255))
