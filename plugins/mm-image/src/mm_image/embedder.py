"""Linear patch embedding plus 2-D positions (fixed sin-cos by default, MAE style), from the core."""

from __future__ import annotations

from mmcore.continuous import PatchEmbedder as _PatchEmbedder


class PatchEmbedder(_PatchEmbedder):
    """The core's patch embedder; widths must split evenly over the (row, col) sin-cos features."""

    axes = 2
