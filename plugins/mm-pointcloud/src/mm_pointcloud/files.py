"""Reading point clouds and meshes (core open3d only; open3d.ml is not needed).

Point formats: .ply (without faces), .pcd, .xyz, .xyzn, .xyzrgb, .pts.
Meshes (.ply with faces, .obj, .stl, .off, .gltf, .glb) are sampled to points,
uniformly by area or by Poisson-disk sampling (evenly spaced points).

What is decoded is checked, since open3d pads a short file with zeros and
says so only on stderr: PLY files are read by our own strict reader
(`ply.py`); the counts a .pcd, .pts or .off header declares are compared with
the data the file holds; every coordinate must be finite and every triangle
index in range. Every failure is a DataError naming the file.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from mmcore.folders import refusal
from mmcore.errors import ConfigError, DataError

from .ply import read_ply

POINT_FORMATS = (".ply", ".pcd", ".xyz", ".xyzn", ".xyzrgb", ".pts")
MESH_FORMATS = (".ply", ".obj", ".stl", ".off", ".gltf", ".glb")
SAMPLING = ("uniform", "poisson")
ACCEPTED = f"point clouds {', '.join(POINT_FORMATS)} or meshes {', '.join(MESH_FORMATS)}"


def sample_mesh(mesh, num_points: int, sampling: str = "uniform", seed: int = 0) -> np.ndarray:
    """[num_points, 3] points on a triangle mesh's surface (seeded: the same points every time)."""
    import open3d as o3d

    if sampling not in SAMPLING:
        raise ConfigError(f"mesh sampling {sampling!r} is unknown; accepted: {', '.join(SAMPLING)}")
    o3d.utility.random.seed(seed)
    if sampling == "poisson":
        cloud = mesh.sample_points_poisson_disk(num_points)
    else:
        cloud = mesh.sample_points_uniformly(num_points)
    return np.asarray(cloud.points)


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split()) or 'no detail'}"


def check_finite(points: np.ndarray, path, noun: str) -> None:
    bad = ~np.isfinite(points).all(axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        raise refusal(
            f"{path}: {noun} {i} (row {i + 1}) has a non-finite coordinate {points[i].tolist()}; "
            f"{int(bad.sum())} such {noun}(s); accepted: finite xyz (drop or repair them)",
            "non-finite points",
        )


def _header_counts(path: Path, suffix: str, data: bytes) -> tuple[dict[str, int], int | None]:
    """Counts a .pcd / .pts / .off header declares, and how many data rows follow it (binary .pcd: its
    bytes over the row size). Returns ({}, None) for formats without declared counts."""
    if suffix == ".pcd":
        fields, at = {}, 0
        while at < len(data) and "DATA" not in fields:  # header lines, up to and including DATA
            end = data.find(b"\n", at)
            end = len(data) if end < 0 else end
            words = data[at:end].decode("latin-1").split()
            if words and not words[0].startswith("#"):
                fields[words[0].upper()] = words[1:]
            at = end + 1
        try:
            declared = int(fields["POINTS"][0])
            kind = fields["DATA"][0].lower()
            row = sum(int(s) * int(c) for s, c in zip(fields["SIZE"], fields.get("COUNT", ["1"] * len(fields["SIZE"]))))
        except (KeyError, IndexError, ValueError):
            raise refusal(f"{path}: PCD header lacks valid POINTS, SIZE or DATA lines; accepted: {ACCEPTED}", "damaged header") from None
        if kind == "ascii":
            return {"points": declared}, sum(1 for line in data[at:].split(b"\n") if line.strip())
        if kind == "binary":
            return {"points": declared}, max(len(data) - at, 0) // max(row, 1)
        return {"points": declared}, None  # binary_compressed: open3d reads all or nothing
    lines = data.split(b"\n")
    rows = [line for line in lines if line.strip() and not line.lstrip().startswith(b"#")]
    if suffix == ".pts" and rows and rows[0].strip().isdigit():
        return {"points": int(rows[0])}, len(rows) - 1
    if suffix == ".off" and rows:
        words = rows[0].split()[1:] if rows[0].split()[0].upper().endswith(b"OFF") else []
        first = 1
        if not words and len(rows) > 1:
            words, first = rows[1].split(), 2
        try:
            vertices, faces = int(words[0]), int(words[1])
        except (IndexError, ValueError):
            raise refusal(f"{path}: OFF header lacks its vertex and face counts; accepted: {ACCEPTED}", "damaged header") from None
        return {"vertices": vertices, "faces": faces}, len(rows) - first
    return {}, None


def _decode(path: Path | None, suffix: str, name, data: bytes | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(points or vertices [P, 3] float64, triangles [T, 3] int64) of one file, counts checked; ``data``
    are its bytes when already read (``path`` may then be None for a PLY), ``name`` what messages say."""
    import open3d as o3d

    data = path.read_bytes() if data is None else data
    if suffix == ".ply":
        return read_ply(name, data)
    declared, available = _header_counts(name, suffix, data)
    wanted = sum(declared.values())
    if available is not None and available < wanted:
        what = " and ".join(f"{n} {k}" for k, n in declared.items())
        raise refusal(
            f"{name}: the header declares {what} but the file holds only {available} complete rows; "
            "accepted: complete files (this one is truncated)",
            "truncated",
        )
    with o3d.utility.VerbosityContextManager(o3d.utility.VerbosityLevel.Error):
        if suffix in MESH_FORMATS:
            mesh = o3d.io.read_triangle_mesh(str(path))
            vertices, triangles = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.triangles, np.int64)
            if "vertices" in declared and (len(vertices) != declared["vertices"] or len(triangles) < declared["faces"]):
                raise refusal(
                    f"{name}: the header declares {declared['vertices']} vertices and {declared['faces']} faces "
                    f"but {len(vertices)} vertices and {len(triangles)} triangles were read; accepted: "
                    f"complete {ACCEPTED}",
                    "count mismatch",
                )
            if len(triangles) or suffix not in POINT_FORMATS:
                return vertices, triangles
        cloud = o3d.io.read_point_cloud(str(path), remove_nan_points=False, remove_infinite_points=False)
    points = np.asarray(cloud.points, dtype=np.float64)
    if "points" in declared and len(points) != declared["points"]:
        raise refusal(
            f"{name}: the header declares {declared['points']} points but {len(points)} were read; accepted: complete {ACCEPTED}",
            "count mismatch",
        )
    return points, np.zeros((0, 3), np.int64)


def load(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """(points or vertices [P, 3] float64, triangles [T, 3] int64) of one file, fully checked: an empty,
    truncated or unreadable file, a non-finite coordinate (open3d would drop it silently), a triangle
    index out of range or a mesh with no area is a DataError naming the file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in POINT_FORMATS + MESH_FORMATS:
        raise refusal(f"{path}: unknown extension {suffix!r}; accepted: {ACCEPTED}", "unknown extension")
    if not path.is_file():
        raise refusal(f"{path} does not exist; accepted: {ACCEPTED}", "missing")
    if path.stat().st_size == 0:
        raise refusal(f"{path} is empty; accepted: {ACCEPTED}", "empty")
    return _load(path, suffix, path)


def load_bytes(data: bytes, suffix: str, name: str) -> tuple[np.ndarray, np.ndarray]:
    """`load` for a file's bytes held in memory (a streamed record's field) with the extension ``suffix``;
    errors name ``name``. Formats other than PLY go through open3d, which reads only files: a temporary one."""
    if suffix not in POINT_FORMATS + MESH_FORMATS:
        raise refusal(f"{name}: unknown extension {suffix!r}; accepted: {ACCEPTED}", "unknown extension")
    if not data:
        raise refusal(f"{name} is empty; accepted: {ACCEPTED}", "empty")
    if suffix == ".ply":
        return _load(None, suffix, name, data)
    with tempfile.TemporaryDirectory(prefix="mm-pointcloud-") as folder:
        path = Path(folder) / f"record{suffix}"
        try:
            path.write_bytes(data)
        except OSError as exc:
            raise refusal(
                f"cannot read {name}: a temporary copy for open3d cannot be written ({exc.strerror or exc}); accepted: {ACCEPTED}",
                "cannot be read",
            ) from None
        return _load(path, suffix, name, data)


def _load(path: Path | None, suffix: str, name, data: bytes | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`_decode` and every check of `load`, messages naming ``name``."""
    try:
        points, triangles = _decode(path, suffix, name, data)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - open3d and the OS raise many types for a damaged file
        raise refusal(f"cannot read {name}: {_one_line(exc)}; accepted: {ACCEPTED}", "cannot be read") from None
    if not len(triangles) and suffix not in POINT_FORMATS:
        raise refusal(f"{name}: no triangles could be read; accepted: {ACCEPTED}", "no triangles")
    if len(points) == 0:
        raise refusal(f"{name}: no points could be read (empty or damaged file); accepted: {ACCEPTED}", "no points")
    check_finite(points, name, "vertex" if len(triangles) else "point")
    if len(triangles):
        if triangles.min() < 0 or triangles.max() >= len(points):
            raise refusal(
                f"{name}: a triangle refers to vertex {int(triangles.max())} of {len(points)}; accepted: complete {ACCEPTED}",
                "damaged mesh",
            )
        corners = points[triangles]  # [T, 3, 3]
        with np.errstate(over="ignore", invalid="ignore"):  # huge coordinates: the area is inf, refused below
            area = 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1).sum()
        if not np.isfinite(area) or area <= 0:
            raise refusal(
                f"{name}: the mesh's {len(triangles)} triangles have a total area of {area:g}; accepted: "
                "meshes with a finite, non-zero surface to sample",
                "no surface",
            )
    return points, triangles


def probe_points(path: str | Path) -> None:
    """`load` without sampling: point files are small, so a folder is checked whole when it is built."""
    load(path)


def read_points(path: str | Path, num_points: int = 2048, sampling: str = "uniform") -> np.ndarray:
    """[P, 3] float64 finite points of a point-cloud file, or ``num_points`` sampled from a mesh file."""
    return _sampled(*load(path), num_points, sampling, path)


def read_point_bytes(data: bytes, suffix: str, name: str, num_points: int = 2048, sampling: str = "uniform") -> np.ndarray:
    """`read_points` for a file's bytes held in memory with the extension ``suffix``; errors name ``name``."""
    return _sampled(*load_bytes(data, suffix, name), num_points, sampling, name)


def _sampled(points: np.ndarray, triangles: np.ndarray, num_points: int, sampling: str, name) -> np.ndarray:
    """The points themselves, or ``num_points`` sampled (seeded) from a mesh's surface."""
    import open3d as o3d

    if not len(triangles):
        return points
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(points), o3d.utility.Vector3iVector(triangles))
    points = sample_mesh(mesh, num_points, sampling)
    check_finite(points, name, "sampled point")
    return points


def read_point_file(tokenizer, path: str) -> dict:
    """One file as an item ``PointGroupTokenizer.collate`` takes (``mm reconstruct``)."""
    return {"points": read_points(path, tokenizer.num_points), "label": -1, "where": str(path)}
