"""FiftyOne plugin entry point for @condense/fiftyone-condense."""

from .operators import OPERATORS


def register(p):
    for operator in OPERATORS:
        p.register(operator)
