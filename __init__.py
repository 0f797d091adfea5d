"""FiftyOne plugin entry point for @condense/fiftyone-condense."""

from .operators import OPERATORS
from .panels import PANELS


def register(p):
    for plugin_class in OPERATORS + PANELS:
        p.register(plugin_class)
