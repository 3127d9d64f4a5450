"""vaebench: a benchmark and hyperparameter-sweep harness for Variational Autoencoders.

The pipeline, one way:

    spec (spec.py) -> study (study.py) -> trial -> train (train.py) -> metrics (metrics/)
    -> results row (results.py) -> report (report/)
"""

__version__ = "0.1.0"
