"""Deprecated alias of `vaebench.options` (this module's name until 0.1.0; removed in the next
release): `from vaebench import Options` or `from vaebench.options import Options`."""

import warnings

from .options import *  # noqa: F401,F403
from .options import FamilySection, NoOptions, Options, option_errors  # noqa: F401

warnings.warn(
    "vaebench.family is deprecated: import Options from vaebench (or vaebench.options)",
    DeprecationWarning,
    stacklevel=2,
)
