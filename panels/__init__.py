"""FiftyOne Python panels of the plugin."""

from .condense_panel import CondensePanel

PANELS = (CondensePanel,)
