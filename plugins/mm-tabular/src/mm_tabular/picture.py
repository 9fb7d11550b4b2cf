"""Filled-table picture: original | masked | reconstruction as heatmaps of normalised cells."""

from __future__ import annotations

import numpy as np
from PIL import Image
from torch import Tensor

from mmcore.pictures import figure_to_image, pyplot


def table_grid(original: Tensor, masked: Tensor, reconstruction: Tensor, max_rows: int = 16) -> Image.Image:
    """Rows are samples, columns are table columns (numbers normalised, categories as their index)."""
    plt = pyplot()
    panels = [t[:max_rows].detach().float().cpu().numpy() for t in (original, masked, reconstruction)]
    lo, hi = np.nanpercentile(panels[0], 2), np.nanpercentile(panels[0], 98)
    fig, axes = plt.subplots(1, 3, figsize=(9, 3.2), dpi=80)
    for ax, data, title in zip(axes, panels, ("original", "re-masked", "reconstruction")):
        ax.imshow(data, cmap="viridis", vmin=lo, vmax=hi if hi > lo else lo + 1, aspect="auto", interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("column", fontsize=8)
        ax.set_xticks([]), ax.set_yticks([])
    fig.tight_layout()
    return figure_to_image(fig)
