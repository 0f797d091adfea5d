"""The DC3 paper's hue instructions."""

WARM_STYLES = ("sunny", "golden hour", "sepia", "vivid colors", "daylight")
COLD_STYLES = ("rainy", "snowy", "frozen lake", "infrared", "underwater")
TEMPLATE = "Adjust the color hue to be {} and preserve all details and content"


def instruction(style: str) -> str:
    return TEMPLATE.format(style)
