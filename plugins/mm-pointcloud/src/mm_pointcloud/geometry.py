"""Batched farthest-point sampling and k-nearest neighbours in plain torch.

No custom CUDA ops (Point-MAE's most common install failure): these run on
whatever device the points are on, batched, with no host sync.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def farthest_point_sample(points: Tensor, num: int, start: int = 0) -> Tensor:
    """[B, P, 3] → [B, num] indices; each pick is the point farthest from those picked.

    Starts at index ``start`` of every cloud and ties go to the lowest index,
    as open3d's ``farthest_point_down_sample`` does.
    """
    B, P, _ = points.shape
    coords = points.transpose(1, 2).contiguous()  # [B, 3, P]: one gather per step, reductions over a short axis
    picked = torch.empty(B, num, dtype=torch.long, device=points.device)
    nearest = torch.full((B, P), float("inf"), dtype=points.dtype, device=points.device)
    dist = torch.empty(B, P, dtype=points.dtype, device=points.device)
    current = torch.full((B, 1), start, dtype=torch.long, device=points.device)
    for i in range(num):  # in-place updates: no allocation per step
        picked[:, i : i + 1] = current
        centre = coords.gather(2, current[:, None].expand(-1, 3, 1))  # [B, 3, 1]
        torch.sum((coords - centre).square_(), dim=1, out=dist)
        torch.minimum(nearest, dist, out=nearest)
        current = nearest.argmax(dim=1, keepdim=True)
    return picked


def knn(points: Tensor, queries: Tensor, k: int) -> Tensor:
    """[B, P, 3] points, [B, G, 3] queries → [B, G, k] indices of the k nearest points, nearest first."""
    # |q|² - 2 q·p + |p|²: one batched matmul instead of a [B, G, P, 3] difference tensor
    dist = queries.square().sum(-1)[..., None] - 2 * queries @ points.transpose(1, 2) + points.square().sum(-1)[:, None]
    return dist.topk(k, dim=-1, largest=False, sorted=True).indices


def gather_points(points: Tensor, index: Tensor) -> Tensor:
    """points [B, P, 3], index [B, ...] → [B, ..., 3]."""
    B = points.shape[0]
    flat = index.reshape(B, -1)
    return points.gather(1, flat[..., None].expand(-1, -1, 3)).reshape(*index.shape, 3)


RELATIVE_EXTENT = 1e-9  # a radius below this × the coordinates' size is rounding residue (float32 resolves only 1e-7)


def extent(points: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(points less their centroid, radius of the farthest one, the radius that is only rounding residue:
    ``RELATIVE_EXTENT`` × the largest coordinate, 0 for a cloud of zeros)."""
    centred = points - points.mean(axis=0, keepdims=True)
    return centred, float(np.sqrt((centred**2).sum(axis=1)).max()), RELATIVE_EXTENT * float(np.abs(points).max())


def normalise_unit_sphere(points: np.ndarray) -> np.ndarray:
    """Centre on the centroid and scale so the farthest point lies on the unit sphere.

    A cloud with no extent (identical points: its radius is centring residue,
    ~1e-16 of its coordinates) is returned centred and unscaled, never blown
    up to the unit sphere; `PointGroupTokenizer` refuses such clouds first.
    """
    centred, radius, residue = extent(points)
    return centred / radius if radius > residue else centred
