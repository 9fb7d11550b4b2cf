"""Point clouds ↔ point-group tokens (Point-MAE): G centres by farthest-point sampling,
the K nearest points of each, in coordinates relative to their centre."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mmcore.contract import Tokens
from mmcore.errors import ConfigError, DataError

from .geometry import extent, farthest_point_sample, gather_points, knn


@dataclass
class PointGroupTokenizer:
    num_points: int = 1024  # every cloud is resampled to this many points in collate
    num_groups: int = 64  # G centres
    group_size: int = 32  # K neighbours per centre
    normalize: bool = True  # centre and scale each cloud to the unit sphere

    def __post_init__(self) -> None:
        for name in ("num_points", "num_groups", "group_size"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"model.tokenizer.{name} {v!r} is invalid; accepted: a positive integer")
        if self.num_groups > self.num_points or self.group_size > self.num_points:
            raise ConfigError(
                f"model.tokenizer: num_groups {self.num_groups} and group_size {self.group_size} must not "
                f"exceed num_points {self.num_points}"
            )

    @property
    def min_points(self) -> int:
        """Fewest points a cloud may have: G × K, so groups can cover it without heavy repetition."""
        return min(self.num_groups * self.group_size, self.num_points)

    # -- data-loader side ---------------------------------------------------------
    def prepare(self, points: Any, where: str) -> np.ndarray:
        """One cloud → [num_points, 3] float32: checked, normalised, resampled (seeded, so repeatable)."""
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise DataError(f"{where}: points of shape {list(pts.shape)}; accepted: [P, 3] xyz coordinates")
        bad = ~np.isfinite(pts).all(axis=1)
        if bad.any():
            i = int(np.argmax(bad))
            raise DataError(
                f"{where}: point {i} (row {i + 1}) has a non-finite coordinate {pts[i].tolist()}; "
                f"{int(bad.sum())} such point(s); accepted: finite xyz (drop or repair them)"
            )
        big = np.abs(pts).max(initial=0.0)
        if big > np.finfo(np.float32).max:
            raise DataError(f"{where}: a coordinate of {big:g} overflows float32; accepted: finite xyz within ±3.4e38 (rescale the cloud)")
        if len(pts) < self.min_points:
            raise DataError(
                f"{where}: {len(pts)} points, fewer than num_groups × group_size = {self.min_points}; "
                "accepted: denser clouds, or a smaller model.tokenizer.num_groups or model.tokenizer.group_size"
            )
        if self.normalize:
            centred, radius, residue = extent(pts)
            if radius <= residue:  # identical points: the radius is centring residue, not a size to divide by
                raise DataError(
                    f"{where}: all {len(pts)} points coincide (radius {radius:.3g} around their centroid, "
                    f"coordinates up to {big:.3g}), so there is no shape to scale to the unit sphere; "
                    "accepted: clouds with extent, or model.tokenizer.normalize=false"
                )
            pts = centred / radius
        rng = np.random.default_rng(len(pts))
        if len(pts) > self.num_points:
            pts = pts[np.sort(rng.choice(len(pts), self.num_points, replace=False))]
        elif len(pts) < self.num_points:  # repeated points change neither FPS nor the groups' shapes much
            pts = np.concatenate([pts, pts[rng.choice(len(pts), self.num_points - len(pts))]])
        return pts.astype(np.float32)

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Tensor]:
        """Items {"points": [P, 3], "label": int, "where": name} → points [B, num_points, 3], labels [B]."""
        clouds = [self.prepare(s["points"], s.get("where", f"sample {i}")) for i, s in enumerate(samples)]
        return {
            "points": torch.from_numpy(np.stack(clouds)),
            "labels": torch.tensor([int(s.get("label", -1)) for s in samples], dtype=torch.long),
        }

    # -- device side --------------------------------------------------------------
    def tokenize(self, batch: dict[str, Tensor]) -> Tokens:
        points = batch["points"]  # [B, P, 3]
        B, P, _ = points.shape
        G, K = self.num_groups, self.group_size
        centres = gather_points(points, farthest_point_sample(points, G))  # [B, G, 3]
        groups = gather_points(points, knn(points, centres, K))  # [B, G, K, 3]
        values = (groups - centres[:, :, None]).reshape(B, G, K * 3)
        return Tokens(values=values, positions=centres, valid=None, meta={"group_size": K})

    def detokenize(self, values: Tensor, tokens: Tokens) -> Tensor:
        """[B, G, K*3] relative groups → [B, G*K, 3] points (groups placed back at their centres)."""
        B, G, _ = values.shape
        K = tokens.meta["group_size"]
        return (values.reshape(B, G, K, 3) + tokens.positions[:, :, None].to(values.dtype)).reshape(B, G * K, 3)
