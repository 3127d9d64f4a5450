"""vaebench: a benchmark and hyperparameter-sweep harness for Variational Autoencoders.

The pipeline, one way, one package per stage (docs/architecture.md):

    spec/ -> sweep/ (study, worker) -> engine/ (execute one run, train) -> metrics/ -> results/ (row)
    -> reporting/ (tables, figures, html)

The public API (api.py; `help(vaebench.run)` etc. give each one's parameters, return value, units
and an example; docs/python.md walks through them in a notebook):

    run(spec, ...)                   run or resume a sweep (a YAML path or a dict) -> StudyStatus
    load_results(study, ...)         its rows, one per run -> pandas.DataFrame
    load_history(study, ...)         the per-epoch losses, one row per run and epoch -> DataFrame
    load_model(run_id, ...)          a finished run's trained model -> (VAE, RunConfig)
    sample_grid(model, n, ...)       n prior samples tiled for plt.imshow -> numpy array in [0, 1]
    evaluate(model, ...)             score any VAE with the registered metrics -> dict of columns
    add_result(study, metrics, ...)  join an outside result to a study's report -> run id
    report(study, ...)               write the Markdown/HTML report -> the paths written
    load_spec(path), parse_spec(d)   read and validate a sweep spec -> SweepSpec
    load_plugins(modules)            import plugin modules -> their provenance records
    MODELS, DATASETS, METRICS, LIKELIHOODS, ESTIMATORS    the registries plugins fill
    ModelFamily, DatasetSource, Dataset, Options, VAE, Likelihood,
    register_metric, Column,
    Estimator, TrainingObjective, Step, LossOut    what a plugin registers (docs/plugins.md)
    VaebenchError                    the base of every error meant for the user (its message says what to do)

Names are imported on first use, so `import vaebench` stays cheap (no torch).
"""

from ._version import __version__

_EXPORTS = {
    "load_spec": ("spec.sweep_spec", "load_spec"),
    "parse_spec": ("spec.sweep_spec", "parse_spec"),
    "run": ("api", "run"),
    "load_results": ("api", "load_results"),
    "load_history": ("api", "load_history"),
    "load_model": ("api", "load_model"),
    "sample_grid": ("api", "sample_grid"),
    "evaluate": ("api", "evaluate"),
    "report": ("api", "report"),
    "add_result": ("api", "add_result"),
    "MODELS": ("models", "MODELS"),
    "ModelFamily": ("models", "ModelFamily"),
    "VAE": ("models", "VAE"),
    "DATASETS": ("data", "DATASETS"),
    "DatasetSource": ("data", "DatasetSource"),
    "Dataset": ("data", "Dataset"),
    "METRICS": ("metrics", "METRICS"),
    "register_metric": ("metrics", "register_metric"),
    "Column": ("metrics", "Column"),
    "LIKELIHOODS": ("objectives", "LIKELIHOODS"),
    "Likelihood": ("objectives", "Likelihood"),
    "ESTIMATORS": ("objectives", "ESTIMATORS"),
    "Estimator": ("objectives", "Estimator"),
    "TrainingObjective": ("objectives", "TrainingObjective"),
    "Step": ("objectives", "Step"),
    "LossOut": ("objectives", "LossOut"),
    "Options": ("options", "Options"),
    "VaebenchError": ("errors", "VaebenchError"),
    "load_plugins": ("plugins", "load_plugins"),
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    if name in _EXPORTS:
        import importlib

        module, attr = _EXPORTS[name]
        value = importlib.import_module(f"{__name__}.{module}")
        value = value if attr is None else getattr(value, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'vaebench' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
