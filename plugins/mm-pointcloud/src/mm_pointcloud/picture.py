"""Point-cloud picture: rows of original | visible | reconstruction scatter plots (matplotlib, Agg).

`MaskedModel.reconstruct` replaces a hidden group's points by one constant
offset, so each hidden group collapses onto a single repeated point: the
"visible" panel drops repeated points, and the reconstruction panel colours
the points that differ from the original (the predicted groups).
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from torch import Tensor

from mmcore.pictures import figure_to_image, pyplot


def _unique_rows(points: np.ndarray) -> np.ndarray:
    _, index, counts = np.unique(points, axis=0, return_index=True, return_counts=True)
    return points[np.sort(index[counts == 1])]


def point_cloud_grid(original: Tensor, masked: Tensor, reconstruction: Tensor, max_rows: int = 4) -> Image.Image:
    plt = pyplot()
    clouds = [t[:max_rows].detach().float().cpu().numpy() for t in (original, masked, reconstruction)]
    rows = len(clouds[0])
    fig = plt.figure(figsize=(7.5, 2.5 * rows), dpi=72)
    for i in range(rows):
        orig, vis, rec = clouds[0][i], _unique_rows(clouds[1][i]), clouds[2][i]
        predicted = np.abs(rec - orig).sum(1) > 1e-6
        panels = (
            ("original", orig, "tab:blue"),
            ("visible", vis, "tab:blue"),
            ("reconstruction", rec, np.where(predicted, "tab:red", "tab:blue")),
        )
        for j, (title, pts, colour) in enumerate(panels):
            ax = fig.add_subplot(rows, 3, 3 * i + j + 1, projection="3d")
            ax.scatter(pts[:, 0], pts[:, 1], pts[:, 2], s=1.5, c=colour, depthshade=False)
            ax.set_xlim(-1, 1), ax.set_ylim(-1, 1), ax.set_zlim(-1, 1)
            ax.set_axis_off()
            if i == 0:
                ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return figure_to_image(fig)
