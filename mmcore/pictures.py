"""Matplotlib for reconstruction pictures: headless, and turned into the PIL image a ``Modality.picture`` returns."""

from __future__ import annotations

import io
from typing import Any

from PIL import Image


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display on training machines), imported on first use:
    matplotlib is only needed by the plugins that draw with it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_to_image(fig: Any) -> Image.Image:
    """The figure as an RGB image, rendered as PNG; the figure is closed (pyplot keeps every open one alive)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    buf.seek(0)
    return Image.open(buf).convert("RGB")
