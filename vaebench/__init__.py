"""vaebench: a benchmark and hyperparameter-sweep harness for Variational Autoencoders.

The pipeline, one way, one package per stage (docs/architecture.md):

    spec/ -> sweep/ (study, worker) -> engine/ (execute one run, train) -> metrics/ -> results/ (row)
    -> reporting/ (tables, figures, html)

The public API (see api.py; each function documents its units):

    load_spec, run, load_results, load_model, evaluate, report,    functions
    add_result
    MODELS, DATASETS, METRICS, LIKELIHOODS                           the registries plugins fill
    ModelFamily, DatasetSource, Options, VAE, Likelihood,            what a plugin registers
    register_metric, Column                                          (docs/plugins.md)

Names are imported on first use, so `import vaebench` stays cheap (no torch).
"""

from ._version import __version__

_EXPORTS = {
    "load_spec": ("spec.sweep_spec", "load_spec"),
    "parse_spec": ("spec.sweep_spec", "parse_spec"),
    "run": ("api", "run"),
    "load_results": ("api", "load_results"),
    "load_model": ("api", "load_model"),
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
    "Options": ("options", "Options"),
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
