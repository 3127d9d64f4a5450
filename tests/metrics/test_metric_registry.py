"""Self-describing metrics: a metric declares its columns (type, unit, direction, label) and options,
and a user's metric, registered from its own module, becomes a results column, a search objective
and an "All metrics" report column with nothing else edited."""

from dataclasses import replace

import pyarrow as pa
import pytest
import torch
from pydantic import Field
from typer.testing import CliRunner

from tests.conftest import TINY_SPEC
from tests.reporting.test_report import column, make_rows, metrics, table
from vaebench.cli.commands import app
from vaebench.data import load_dataset
from vaebench.errors import SpecError
from vaebench.metrics import (
    METRICS,
    METRICS_SKIPPED,
    Column,
    MetricDeclarationError,
    MetricNotApplicable,
    evaluate,
    numeric_metric_columns,
    register_metric,
    unregister_metric,
)
from vaebench.metrics import column_names as C
from vaebench.models import build_model
from vaebench.objectives.likelihoods import Bernoulli
from vaebench.options import Options
from vaebench.reporting.tables import study_tables
from vaebench.results.rows import (
    load_results,
    metric_types,
    param_columns,
    read_row,
    row_schema,
    write_row,
)
from vaebench.spec.sweep_spec import RunConfig, parse_spec

FAST_EVAL = {"fid_extractor": None, "nll_examples": 20, "nll_k": 4}
DIGITS_CFG = {
    "dataset": {"name": "digits"},
    "model": {"name": "mlp", "hidden_dim": 16, "latent_dim": 3},
    "eval": FAST_EVAL,
}


class BrightnessOptions(Options):
    scale: float = Field(1.0, gt=0.0, description="multiplies the mean brightness")
    channel: int = Field(0, ge=0, description="which image channel")


def _brightness(ctx) -> dict:
    """Mean brightness of the reconstructions (a user's metric)."""
    value = ctx.reconstructions[:, ctx.options.channel].mean().item() * ctx.options.scale
    return {"brightness": value, "brightness_pixels": int(ctx.x[0].numel()), "brightness_note": ["user"]}


BRIGHTNESS_COLUMNS = [
    Column(
        "brightness",
        "float",
        unit="per pixel",
        direction="higher",
        label="Brightness",
        doc="mean pixel value of the reconstructions, times the scale option",
    ),
    Column("brightness_pixels", "int", unit="pixels", label="Pixels", doc="pixels per image"),
    Column("brightness_note", "list[str]", doc="a provenance list"),
]


@pytest.fixture
def brightness():
    """A user's metric with options, registered for the test and removed afterwards."""
    register_metric("brightness", columns=BRIGHTNESS_COLUMNS, options=BrightnessOptions)(_brightness)
    try:
        yield METRICS.get("brightness")
    finally:
        unregister_metric("brightness")


@pytest.fixture(scope="module")
def digits():
    return load_dataset(RunConfig.model_validate(DIGITS_CFG).dataset)


def _model(cfg: RunConfig):
    torch.manual_seed(0)
    return build_model(cfg.model, (1, 8, 8), Bernoulli())


# --- declarations -------------------------------------------------------------------------------------


def test_built_in_declarations_cover_every_column_with_its_type():
    types = metric_types()
    constants = {v for k, v in vars(C).items() if k.isupper() and isinstance(v, str)}
    assert len(constants) == 78 and constants | {METRICS_SKIPPED} <= set(types)  # every built-in column, declared
    owners = [m for m in METRICS.names() for c in METRICS.get(m).columns if c.name in constants]
    assert len(owners) == 78  # each by one metric
    assert types[C.RECON_MSE] == pa.float64() and types[C.SSIM_WIN_SIZE] == pa.int64()
    assert types[C.KL_PER_DIM] == pa.list_(pa.float64()) and types[C.FID_EXTRACTOR] == pa.string()
    assert types[C.DISENTANGLEMENT_FACTORS] == pa.list_(pa.string()) and types[C.NLL_K] == pa.int64()
    assert types[METRICS_SKIPPED] == pa.list_(pa.string())
    kl = next(c for c in METRICS.get("elbo").columns if c.name == C.KL)
    assert (kl.unit, kl.direction, kl.label, kl.rank) == ("nats per example", "lower", "KL", False)
    # objectives: the scalar columns with a direction; settings and provenance are not
    objectives = numeric_metric_columns()
    assert {C.NEG_ELBO, C.RECON_MSE, C.KL, C.SSIM, C.FID, C.NLL_IS, C.MIG, C.ACTIVE_UNITS} <= set(objectives)
    assert not {C.NLL_K, C.SSIM_SIGMA, C.FID_SAMPLES, C.KL_PER_DIM, C.FID_EXTRACTOR} & set(objectives)


def test_a_user_metric_becomes_a_typed_column_and_an_objective(brightness):
    types = metric_types()
    assert types["brightness"] == pa.float64() and types["brightness_pixels"] == pa.int64()
    assert types["brightness_note"] == pa.list_(pa.string())
    assert "brightness" in numeric_metric_columns() and "brightness_pixels" not in numeric_metric_columns()
    schema = row_schema(
        {
            "run_id": "r",
            "brightness": 0.3,
            "brightness_pixels": 64,
            "brightness_note": ["x"],
            "eval_seconds_brightness": 0.1,
            METRICS_SKIPPED: [],
        }
    )
    assert schema.field("brightness").type == pa.float64()
    assert schema.field("brightness_pixels").type == pa.int64()
    assert schema.field(METRICS_SKIPPED).type == pa.list_(pa.string())
    spec = parse_spec({**TINY_SPEC, "search": {"objectives": [{"metric": "brightness", "direction": "maximize"}]}})
    assert spec.search.metrics == ["brightness"] and spec.search.directions == ["maximize"]
    with pytest.raises(SpecError, match="unknown metric 'brightness_pixels'"):  # a setting, not an objective
        parse_spec({**TINY_SPEC, "search": {"objectives": [{"metric": "brightness_pixels"}]}})


def test_an_unregistered_metric_is_gone_everywhere():
    register_metric("brightness", columns=BRIGHTNESS_COLUMNS, options=BrightnessOptions)(_brightness)
    assert "brightness" in metric_types()
    unregister_metric("brightness")
    assert "brightness" not in METRICS and "brightness" not in metric_types()
    assert "brightness" not in numeric_metric_columns()
    with pytest.raises(KeyError, match="declare a metric's column in the metric's registration"):
        row_schema({"run_id": "r", "brightness": 0.3})
    with pytest.raises(SpecError, match="unknown metric 'brightness'"):
        parse_spec({**TINY_SPEC, "search": {"objectives": [{"metric": "brightness"}]}})


def test_an_undeclared_column_is_refused():
    with pytest.raises(KeyError, match="undeclared column 'sharpness'.*register_metric"):
        row_schema({"run_id": "r", "sharpness": 1.0})


def test_a_metric_returning_an_undeclared_column_is_an_error_naming_both(digits):
    @register_metric("leaky", columns=[Column("leaky_value", "float", direction="lower")])
    def leaky(ctx):
        return {"leaky_value": 1.0, "leaky_extra": 2.0}

    try:
        cfg = RunConfig.model_validate(DIGITS_CFG)
        with pytest.raises(MetricDeclarationError, match="metric 'leaky' returned column.*'leaky_extra'"):
            evaluate(_model(cfg), digits, cfg, seed=0, names=["leaky"])
    finally:
        unregister_metric("leaky")


def test_a_column_declared_by_two_metrics_is_refused_naming_both(brightness):
    with pytest.raises(MetricDeclarationError, match="'kl' is declared by metric 'elbo' and by metric 'mine'"):
        register_metric("mine", columns=[Column(C.KL, "float")])(lambda ctx: {})
    with pytest.raises(
        MetricDeclarationError, match="'brightness' is declared by metric 'brightness' and by metric 'other'"
    ):
        register_metric("other", columns=[Column("other_x", "float"), Column("brightness", "float")])(lambda ctx: {})
    assert "mine" not in METRICS and "other" not in METRICS  # nothing registered


class _NeedsAValue(Options):
    scale: float


class _Mapping(Options):
    table: dict = {}


@pytest.mark.parametrize(
    "make, says",
    [
        (lambda: Column("x", "double"), "dtype must be one of float, int, str"),
        (lambda: Column("x", "float", direction="up"), "direction must be 'lower', 'higher' or None"),
        (lambda: Column("x", "str", direction="lower"), "a str column has no direction"),
        (lambda: Column("X-y", "float"), "column name must match"),
        (lambda: register_metric("empty", columns=[])(lambda ctx: {}), "declares no columns"),
        (
            lambda: register_metric("twice", columns=[Column("tw", "int"), Column("tw", "int")])(lambda ctx: {}),
            "declares column 'tw' twice",
        ),
        (lambda: register_metric("skips", columns=[Column(METRICS_SKIPPED, "list[str]")])(lambda ctx: {}), "reserved"),
        (
            lambda: register_metric("loose", columns=[Column("loose_x", "float")], options=dict)(lambda ctx: {}),
            "options must be a pydantic model",
        ),
        (lambda: METRICS.register("bare", lambda ctx: {}), "register it with @register_metric"),
        (
            lambda: register_metric("needy", columns=[Column("needy_x", "float")], options=_NeedsAValue)(
                lambda ctx: {}
            ),
            "metric 'needy': every field of its options model _NeedsAValue needs a default",
        ),
        (
            lambda: register_metric("typed", columns=[Column("typed_x", "float")], options=_Mapping)(lambda ctx: {}),
            "metric 'typed', option 'table': option type",
        ),
    ],
)
def test_invalid_declarations_are_refused(make, says):
    with pytest.raises(MetricDeclarationError, match=says):
        make()
    assert not {"empty", "twice", "skips", "loose", "bare", "needy", "typed"} & set(METRICS.names())


# --- not applicable -----------------------------------------------------------------------------------


def test_a_metric_that_does_not_apply_leaves_null_columns_and_says_why(digits):
    @register_metric("picky", columns=[Column("picky_a", "float", direction="lower"), Column("picky_b", "int")])
    def picky(ctx):
        raise MetricNotApplicable("needs colour images")

    try:
        cfg = RunConfig.model_validate(DIGITS_CFG)
        out = evaluate(_model(cfg), digits, cfg, seed=0, names=["picky", "recon_mse"])
    finally:
        unregister_metric("picky")
    assert out["picky_a"] is None and out["picky_b"] is None and "picky_a" in out and "picky_b" in out
    assert out[METRICS_SKIPPED] == ["picky: needs colour images"]
    assert out[C.RECON_MSE] > 0 and out["eval_seconds_picky"] >= 0  # the others still run


def test_class_based_metrics_do_not_apply_to_an_unlabeled_dataset(digits):
    cfg = RunConfig.model_validate({**DIGITS_CFG, "eval": {**FAST_EVAL, "fid_extractor": "classifier"}})
    unlabeled = replace(digits, labeled=False)
    out = evaluate(_model(cfg), unlabeled, cfg, seed=0, names=["per_class", "fid", "ssim"])
    assert out[C.RECON_MSE_PER_CLASS] is None and out[C.FID] is None and out[C.IS] is None
    assert out[METRICS_SKIPPED][0] == "per_class: dataset 'digits' has no class labels"
    assert out[METRICS_SKIPPED][1].startswith("fid: the classifier feature extractor is trained on class labels")
    assert "use fid_extractor: inception" in out[METRICS_SKIPPED][1]
    assert len(out[METRICS_SKIPPED]) == 2 and 0 < out[C.SSIM] <= 1
    labeled = evaluate(_model(cfg), digits, cfg, seed=0, names=["per_class"])
    assert labeled[METRICS_SKIPPED] == [] and len(labeled[C.RECON_MSE_PER_CLASS]) == 10


class _MonteCarloKL:
    """Mixin: a KL that does not decompose (a one-sample estimate at z, like a VampPrior's), which
    records the z it was given and the z the decoder got."""

    kl_per_dim = False

    def kl(self, mu, logvar, z):
        self.kl_z.append(z.clone())
        return (z**2).sum(1, keepdim=True) - logvar.sum(1, keepdim=True)  # (B, 1): any function of z

    def decode(self, z, y=None):
        self.decoded_z.append(z.clone())
        return super().decode(z, y)


def test_elbo_uses_the_models_kl_at_the_decoded_z_and_kl_per_dim_is_skipped_when_it_does_not_decompose(digits):
    cfg = RunConfig.model_validate({**DIGITS_CFG, "eval": {**FAST_EVAL, "batch_size": 97}})
    model = _model(cfg)
    model.__class__ = type("MCKLModel", (_MonteCarloKL, type(model)), {})  # the same weights, the other KL
    model.kl_z, model.decoded_z = [], []
    out = evaluate(model, digits, cfg, seed=0, names=["elbo", "kl_per_dim", "latent"])
    assert out[METRICS_SKIPPED] == [
        "kl_per_dim: MCKLModel's KL does not decompose by latent dimension (kl_per_dim = False)"
    ]
    assert out[C.KL_PER_DIM] is None and out[C.ACTIVE_UNITS] is not None  # active units still apply
    # elbo: one model.kl call per batch, at exactly the z that batch decoded
    sampled = model.decoded_z[-len(model.kl_z) :]
    assert len(model.kl_z) == -(-len(digits.x_test) // 97) > 1
    assert all(torch.equal(a, b) for a, b in zip(model.kl_z, sampled))
    with torch.no_grad():
        mu, logvar = model.encode(digits.x_test)
        z = torch.cat(model.kl_z)
        kl = ((z**2).sum(1) - logvar.sum(1)).mean().item()
    assert out[C.KL] == pytest.approx(kl, rel=1e-6)
    assert out[C.NEG_ELBO] == pytest.approx(out[C.RECON_NLL] + out[C.KL], rel=1e-6)


# --- options ---------------------------------------------------------------------------------------------


def test_metric_options_validate_with_did_you_mean_errors(brightness):
    base = {**TINY_SPEC, "eval": {**FAST_EVAL}}
    with pytest.raises(
        SpecError,
        match=r"field eval\.brightness\.scael: unknown key: 'scael' is not an option of "
        r"metric 'brightness'\. Did you mean 'scale'\?",
    ):
        parse_spec({**base, "eval": {**FAST_EVAL, "brightness": {"scael": 2.0}}})
    with pytest.raises(
        SpecError,
        match=r"field eval\.brightnes: unknown key: 'brightnes' is neither an eval setting "
        r"nor a metric with options\. Did you mean 'brightness'\?",
    ):
        parse_spec({**base, "eval": {**FAST_EVAL, "brightnes": {"scale": 2.0}}})
    with pytest.raises(SpecError, match=r"field eval\.nll_kk: .*Did you mean 'nll_k'\?"):
        parse_spec({**base, "eval": {**FAST_EVAL, "nll_kk": 5}})
    with pytest.raises(SpecError, match=r"field eval\.brightness\.scale: Input should be greater than 0 \(got -1\)"):
        parse_spec({**base, "eval": {**FAST_EVAL, "brightness": {"scale": -1}}})
    with pytest.raises(SpecError, match=r"field eval\.ssim: unknown key: metric 'ssim' has no options"):
        parse_spec({**base, "eval": {**FAST_EVAL, "ssim": {}}})


def test_metric_options_change_the_run_id_only_when_given(brightness):
    plain = RunConfig.model_validate(DIGITS_CFG)
    at_default = RunConfig.model_validate({**DIGITS_CFG, "eval": {**FAST_EVAL, "brightness": {"scale": 1.0}}})
    empty = RunConfig.model_validate({**DIGITS_CFG, "eval": {**FAST_EVAL, "brightness": {}}})
    scaled = RunConfig.model_validate({**DIGITS_CFG, "eval": {**FAST_EVAL, "brightness": {"scale": 2.0}}})
    assert plain.identity() == at_default.identity() == empty.identity()
    assert "brightness" not in plain.identity()["eval"]
    assert scaled.identity()["eval"]["brightness"] == {"scale": 2.0}
    spec = lambda ev: parse_spec({**TINY_SPEC, **DIGITS_CFG, "eval": ev})  # noqa: E731
    assert spec(FAST_EVAL).runs()[0].run_id == spec({**FAST_EVAL, "brightness": {}}).runs()[0].run_id
    assert spec(FAST_EVAL).runs()[0].run_id != spec({**FAST_EVAL, "brightness": {"scale": 2.0}}).runs()[0].run_id
    assert spec(FAST_EVAL).fingerprint() != spec({**FAST_EVAL, "brightness": {"scale": 2.0}}).fingerprint()


def test_metric_options_reach_the_compute_function_and_the_parameter_columns(brightness, digits, tmp_path):
    cfg = RunConfig.model_validate({**DIGITS_CFG, "eval": {**FAST_EVAL, "brightness": {"scale": 3.0}}})
    default = RunConfig.model_validate(DIGITS_CFG)
    model = _model(cfg)
    with torch.no_grad():
        mean = model.reconstruct(digits.x_test).mean().item()
    out = evaluate(model, digits, cfg, seed=0, names=["brightness"])
    assert out["brightness"] == pytest.approx(3 * mean, rel=1e-5)
    assert out["brightness_pixels"] == 64 and out["brightness_note"] == ["user"] and out[METRICS_SKIPPED] == []
    assert evaluate(model, digits, default, seed=0, names=["brightness"])["brightness"] == pytest.approx(mean, rel=1e-5)
    assert brightness.options_for(default) == BrightnessOptions()
    # the options are parameters: param.eval.<metric>.<option>, at their defaults when not given
    params = param_columns(cfg)
    assert params["param.eval.brightness.scale"] == 3.0 and params["param.eval.brightness.channel"] == 0
    assert "param.eval.brightness" not in params
    assert param_columns(default)["param.eval.brightness.scale"] == 1.0
    row = {"run_id": "abc", "study": "s", **params, **out}
    assert row_schema(row).field("param.eval.brightness.channel").type == pa.int64()
    write_row(tmp_path, "s", row)
    back = read_row(tmp_path, "s", "abc")
    assert back["brightness"] == out["brightness"] and back["param.eval.brightness.scale"] == 3.0
    assert back["brightness_note"] == ["user"] and back[METRICS_SKIPPED] == []


# --- the built-in metrics' settings are their options ---------------------------------------------------


@pytest.mark.parametrize(
    "flat, nested",
    [
        ({"fid_samples": 1000}, {"fid": {"fid_samples": 1000}}),
        ({"nll_k": 7, "nll_examples": None}, {"nll": {"nll_k": 7, "nll_examples": None}}),
        ({"mig_bins": 10, "disentanglement_seed": 3}, {"disentanglement": {"mig_bins": 10, "disentanglement_seed": 3}}),
        ({"active_threshold": 0.1}, {"latent": {"active_threshold": 0.1}}),
        ({"active_threshold": 0.1}, {"layers": {"active_threshold": 0.1}}),
        ({"fid_extractor": None, "kid": True}, {"fid_samples": 500, "fid": {"fid_extractor": None, "kid": True}}),
    ],
)
def test_a_built_in_metrics_settings_are_the_same_run_in_either_spelling(flat, nested):
    if "fid_samples" in nested:  # a mix: one setting flat, the others under the metric's name
        flat = {**flat, "fid_samples": 500}
    a = parse_spec({**TINY_SPEC, "eval": flat})
    b = parse_spec({**TINY_SPEC, "eval": nested})
    assert a.runs()[0].run_id == b.runs()[0].run_id != parse_spec(TINY_SPEC).runs()[0].run_id
    assert a.fingerprint() == b.fingerprint() and a.base().identity() == b.base().identity()
    assert a.base().identity()["eval"] == flat
    assert not b.eval.model_extra  # stored as the eval settings, not as eval.<metric>
    assert param_columns(a.base()) == param_columns(b.base())  # param.eval.<setting>, no param.eval.<metric>.*
    assert not any(c.startswith(("param.eval.fid.", "param.eval.nll.")) for c in param_columns(b.base()))
    for name in ("fid", "nll", "disentanglement", "latent", "layers"):
        options = METRICS.get(name).options_for(b.base())
        assert options == METRICS.get(name).options_for(a.base())
        assert options.model_dump() == {k: getattr(a.eval, k) for k in METRICS.get(name).settings.model_fields}


def test_a_built_in_setting_given_twice_must_agree():
    same = parse_spec({**TINY_SPEC, "eval": {"fid_samples": 1000, "fid": {"fid_samples": 1000}}})
    assert same.eval.fid_samples == 1000
    with pytest.raises(
        SpecError,
        match=r"field eval\.fid\.fid_samples: the same setting as eval\.fid_samples, which is 1000: give it once",
    ):
        parse_spec({**TINY_SPEC, "eval": {"fid_samples": 1000, "fid": {"fid_samples": 2000}}})
    with pytest.raises(SpecError, match=r"field eval\.layers\.active_threshold: the same setting as "):
        parse_spec({**TINY_SPEC, "eval": {"latent": {"active_threshold": 0.1}, "layers": {"active_threshold": 0.2}}})
    with pytest.raises(
        SpecError,
        match=r"field eval\.fid\.samples: unknown key: 'samples' is not an option of metric 'fid'\. "
        r"Did you mean 'fid_samples'\?",
    ):
        parse_spec({**TINY_SPEC, "eval": {"fid": {"samples": 1000}}})
    with pytest.raises(SpecError, match=r"field eval\.nll\.nll_k: Input should be greater than or equal to 1"):
        parse_spec({**TINY_SPEC, "eval": {"nll": {"nll_k": 0}}})


def test_built_in_metrics_compute_with_their_settings_as_options(digits):
    """The NLL and the active units read ctx.options: given under the metric's name, the settings
    reach the computation (the columns record them)."""
    cfg = RunConfig.model_validate(
        {
            **DIGITS_CFG,
            "eval": {
                "fid_extractor": None,
                "nll": {"nll_k": 3, "nll_examples": 11},
                "latent": {"active_threshold": 0.5},
            },
        }
    )
    seen = {}

    def spy(ctx):
        seen["options"] = ctx.options
        return {}

    out = evaluate(_model(cfg), digits, cfg, seed=0, names=["nll", "latent"])
    assert out[C.NLL_K] == 3 and out[C.NLL_EXAMPLES] == 11 and out[C.ACTIVE_UNITS_THRESHOLD] == 0.5
    register_metric("spied", columns=[Column("spied_x", "float")], settings=METRICS.get("fid").settings)(spy)
    try:
        evaluate(_model(cfg), digits, cfg, seed=0, names=["spied"])
    finally:
        unregister_metric("spied")
    assert seen["options"].fid_extractor is None and seen["options"].fid_samples == 10000  # FAST_EVAL's, defaults


def test_settings_must_be_eval_settings():
    from vaebench.metrics.declarations import eval_settings

    with pytest.raises(MetricDeclarationError, match=r"\['fid_sample'\] are not eval settings"):
        eval_settings("Bad", "fid_sample", doc="")
    with pytest.raises(MetricDeclarationError, match="has field 'scale', which is not the eval setting"):
        register_metric("own", columns=[Column("own_x", "float")], settings=BrightnessOptions)(lambda ctx: {})
    with pytest.raises(MetricDeclarationError, match="give options or settings, not both"):
        register_metric(
            "both", columns=[Column("both_x", "float")], options=BrightnessOptions, settings=METRICS.get("fid").settings
        )(lambda ctx: {})
    assert not {"own", "both"} & set(METRICS.names())


# --- the report ------------------------------------------------------------------------------------------


def test_a_user_metric_appears_in_the_all_metrics_table_with_its_label_unit_and_direction(brightness):
    cells = {
        0.5: {**metrics(), "brightness": (0.20, 0.01)},
        1.0: {**metrics(), "brightness": (0.30, 0.01)},
        4.0: {**metrics(), "brightness": (0.25, 0.01)},
    }
    t = table(study_tables(make_rows("beta", "objective.beta", cells)), "all_metrics")
    assert "Brightness (per pixel) ↑" in t.header
    assert t.header.index("Brightness (per pixel) ↑") > t.header.index("Active units (count)")  # after the tutorial's
    cells_ = column(t, "Brightness (per pixel) ↑")
    assert [c.text.split(" ± ")[0] for c in cells_] == ["0.2", "0.3", "0.25"]
    assert [c.best for c in cells_] == [False, True, False]  # higher is better
    assert "Pixels" not in " ".join(t.header)  # settings columns are not listed
    # the built-in columns are as before
    assert t.header[1:5] == ["Recon MSE (per pixel) ↓", "KL (nats)", "−ELBO (nats) ↓", "Recon NLL (nats) ↓"]
    # rows without the metric: no column for it
    plain = table(study_tables(make_rows("beta", "objective.beta", {0.5: metrics(), 1.0: metrics()})), "all_metrics")
    assert not any(h.startswith("Brightness") for h in plain.header)


def test_a_user_metric_end_to_end_in_a_sweep_its_rows_search_and_report(brightness, tmp_path, write_spec):
    """A real sweep with the user's metric as an objective and an option: the rows carry its
    columns, the trials its values, and the report its label."""
    spec = {
        **TINY_SPEC,
        "model": DIGITS_CFG["model"],
        "train": {"epochs": 1, "batch_size": 128},
        "eval": {**FAST_EVAL, "brightness": {"scale": 2.0}},
        "grid": {"objective.beta": [0.5, 2.0]},
        "seeds": [0],
        "search": {"objectives": [{"metric": "neg_elbo"}, {"metric": "brightness", "direction": "maximize"}]},
    }
    results, reports = tmp_path / "results", tmp_path / "reports"
    runner = CliRunner()
    r = runner.invoke(app, ["run", str(write_spec(spec)), "-q", "--results", str(results)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    df = load_results(results, "tiny")
    assert len(df) == 2 and (df["status"] == "ok").all()
    assert (df["brightness"] > 0).all() and (df["brightness_pixels"] == 64).all()
    assert (df["param.eval.brightness.scale"] == 2.0).all()
    for skipped in df[METRICS_SKIPPED]:
        skipped = list(skipped)
        assert "disentanglement: dataset 'digits' has no ground-truth factors" in skipped
        assert "fid: switched off (eval.fid_extractor: null)" in skipped
        assert not any(s.startswith(("brightness", "elbo", "recon_mse", "nll")) for s in skipped)  # these ran
    assert df["eval_seconds_brightness"].notna().all()
    r = runner.invoke(
        app, ["report", "--results", str(results), "--out", str(reports), "--format", "md"], catch_exceptions=False
    )
    assert r.exit_code == 0, r.output
    text = (reports / "tiny.md").read_text()
    assert "Brightness (per pixel) ↑" in text  # the all-metrics table
    assert "Brightness (per pixel) ↑" in text.split("## All metrics")[1]
    assert "Pareto front" in text and "| Brightness (per pixel) ↑ |" in text.split("Pareto front")[1]
    assert "**`eval.brightness.scale=2`**" in text  # set by the spec: in bold
    assert "`eval.brightness.channel=0`" in text and "**`eval.brightness.channel" not in text  # resolved default
