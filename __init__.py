"""FiftyOne plugin entry point for @condense/fiftyone-condense."""

import importlib.util
import os
import sys

# `fiftyone plugins download` copies this folder, fiftyone_condense/ included, into the plugins
# directory without pip-installing it, and FiftyOne loads this file by path without putting the
# folder on sys.path. So when the package is not installed, import it from here; appended, so an
# installed fiftyone-condense (`pip install "fiftyone-condense[diffusion]"`) still comes first.
if importlib.util.find_spec("fiftyone_condense") is None:
    sys.path.append(os.path.dirname(os.path.abspath(__file__)))

from .operators import OPERATORS  # noqa: E402
from .panels import PANELS  # noqa: E402


def register(p):
    for plugin_class in OPERATORS + PANELS:
        p.register(plugin_class)
