"""Reading point clouds and meshes with open3d (core open3d only; open3d.ml is not needed).

Point formats: .ply (without faces), .pcd, .xyz, .xyzn, .xyzrgb, .pts.
Meshes (.ply with faces, .obj, .stl, .off, .gltf, .glb) are sampled to points,
uniformly by area or by Poisson-disk sampling (evenly spaced points).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmcore.errors import ConfigError, DataError

POINT_FORMATS = (".ply", ".pcd", ".xyz", ".xyzn", ".xyzrgb", ".pts")
MESH_FORMATS = (".ply", ".obj", ".stl", ".off", ".gltf", ".glb")
SAMPLING = ("uniform", "poisson")
ACCEPTED = f"point clouds {', '.join(POINT_FORMATS)} or meshes {', '.join(MESH_FORMATS)}"


def sample_mesh(mesh, num_points: int, sampling: str = "uniform", seed: int = 0) -> np.ndarray:
    """[num_points, 3] points on a triangle mesh's surface."""
    import open3d as o3d

    if sampling not in SAMPLING:
        raise ConfigError(f"mesh sampling {sampling!r} is unknown; accepted: {', '.join(SAMPLING)}")
    o3d.utility.random.seed(seed)
    if sampling == "poisson":
        cloud = mesh.sample_points_poisson_disk(num_points)
    else:
        cloud = mesh.sample_points_uniformly(num_points)
    return np.asarray(cloud.points)


def read_points(path: str | Path, num_points: int = 2048, sampling: str = "uniform") -> np.ndarray:
    """[P, 3] float64 points of a point-cloud file, or ``num_points`` sampled from a mesh file.

    Non-finite points are kept (open3d would drop them silently) so the
    tokenizer can report them by index; an empty or unreadable file is a DataError.
    """
    import open3d as o3d

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in POINT_FORMATS + MESH_FORMATS:
        raise DataError(f"{path}: unknown extension {suffix!r}; accepted: {ACCEPTED}")
    if not path.is_file():
        raise DataError(f"{path} does not exist; accepted: {ACCEPTED}")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty; accepted: {ACCEPTED}")
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        if suffix in MESH_FORMATS:
            mesh = o3d.io.read_triangle_mesh(str(path))
            if len(mesh.triangles):
                return sample_mesh(mesh, num_points, sampling)
            if suffix not in POINT_FORMATS:
                raise DataError(f"{path}: no triangles could be read; accepted: {ACCEPTED}")
        cloud = o3d.io.read_point_cloud(str(path), remove_nan_points=False, remove_infinite_points=False)
    points = np.asarray(cloud.points, dtype=np.float64)
    if len(points) == 0:
        raise DataError(f"{path}: no points could be read (empty or damaged file); accepted: {ACCEPTED}")
    return points


def read_point_file(tokenizer, path: str) -> dict:
    """One file as an item ``PointGroupTokenizer.collate`` takes (``mm reconstruct``)."""
    return {"points": read_points(path, tokenizer.num_points), "label": -1, "where": str(path)}
