"""Datasets: labelled primitive shapes generated on the fly (no download), and a folder of files."""

from __future__ import annotations

import functools
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch.utils.data import Dataset

from mmcore.contract import check_split
from mmcore.errors import ConfigError, DataError
from mmcore.folders import keep_readable, list_class_folder, read_or_next
from mmcore.records import as_bytes, as_int
from mmcore.records import field as record_field
from mmcore.splits import check_test_fraction, split_indices

from .files import ACCEPTED, MESH_FORMATS, POINT_FORMATS, SAMPLING, check_finite, probe_points, read_point_bytes, read_points, sample_mesh

ON_ERROR = ("raise", "skip")
SHAPES = ("sphere", "cube", "cylinder", "cone", "torus", "tetrahedron", "octahedron", "mobius")


def primitive(name: str):
    """An open3d triangle mesh of a unit-sized primitive."""
    import open3d as o3d

    g = o3d.geometry.TriangleMesh
    make = {
        "sphere": lambda: g.create_sphere(radius=1.0, resolution=20),
        "cube": lambda: g.create_box(1.0, 1.0, 1.0),
        "cylinder": lambda: g.create_cylinder(radius=0.5, height=1.5, resolution=24, split=1),
        "cone": lambda: g.create_cone(radius=0.7, height=1.5, resolution=24, split=1),
        "torus": lambda: g.create_torus(torus_radius=1.0, tube_radius=0.3, radial_resolution=30, tubular_resolution=20),
        "tetrahedron": lambda: g.create_tetrahedron(radius=1.0),
        "octahedron": lambda: g.create_octahedron(radius=1.0),
        "mobius": lambda: g.create_mobius(length_split=70, width_split=15, twists=1, radius=1, flatness=1, width=1, scale=1),
    }
    return make[name]()


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3-D rotation (QR of a Gaussian matrix, sign-fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def make_shape(name: str, num_points: int, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Points on a primitive with random anisotropic scale (0.6-1.4 per axis), rotation and Gaussian noise."""
    points = sample_mesh(primitive(name), num_points, "uniform", seed=int(rng.integers(2**31)))
    points = points - points.mean(0)
    points = points * rng.uniform(0.6, 1.4, size=3) @ random_rotation(rng).T
    return points + rng.normal(scale=noise, size=points.shape)


@functools.lru_cache(maxsize=4)
def _shapes(count: int, num_points: int, noise: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(SHAPES)
    rng.shuffle(labels)
    clouds = np.stack([make_shape(SHAPES[k], num_points, rng, noise) for k in labels]).astype(np.float32)
    return clouds, labels


class Clouds(Dataset):
    def __init__(self, clouds, labels, names) -> None:
        self.clouds, self.labels, self.names = clouds, labels, names

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {"points": self.clouds[i], "label": int(self.labels[i]), "where": self.names[i]}


@dataclass
class ShapesDemo:
    """Primitive shapes (8 classes) sampled with open3d: a labelled demo that needs no download.

    The split is by seed: train and test clouds are different random draws.
    """

    num_train: int = 800
    num_test: int = 240
    noise: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_train < 1 or self.num_test < 0:
            raise ConfigError("data.dataset.num_train must be >= 1 and num_test >= 0")

    def build(self, tokenizer, split: str) -> Dataset:
        check_split(split)
        count = self.num_train if split == "train" else self.num_test
        seed = self.seed * 2 + (split == "test")
        clouds, labels = _shapes(count, tokenizer.num_points, self.noise, seed)
        return Clouds(clouds, labels, [f"shapes demo {split} #{i} ({SHAPES[k]})" for i, k in enumerate(labels)])


class _Files(Dataset):
    """Lazy: files are read in ``__getitem__``, so data-loader workers share the work. Meshes are
    sampled with a fixed seed, so an item is a function of its index alone (no generator needed)."""

    def __init__(self, files: list[Path], labels: list[int], num_points: int, options: PointFolder) -> None:
        self.files, self.labels, self.num_points = files, labels, num_points
        self.sampling, self.on_error = options.sampling, options.on_error
        self.skipped: list[str] = []  # files skipped in this process (on_error=skip)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, i: int) -> dict:
        points = read_points(self.files[i], self.num_points, self.sampling)
        return {"points": points, "label": self.labels[i], "where": str(self.files[i])}

    def __getitem__(self, i: int) -> dict:
        return read_or_next(self.files, i, self.load, self.on_error, self.skipped, "point-cloud", ACCEPTED)


@dataclass
class PointFolder:
    """Point-cloud and mesh files under ``path`` (recursively); first-level subfolders are classes.

    Files directly in ``path`` get label -1; ``test_fraction`` of the files,
    chosen by a fixed-seed permutation, form the test split. ``on_error``:
    ``raise`` stops at the first unusable file with its name; ``skip`` reads
    every file once when the dataset is built (point files are small) and
    drops the unusable ones, warning once with a count per reason; a file
    that still fails later is replaced by the next one, with a warning.
    """

    path: str = "???"
    extensions: list[str] = field(default_factory=lambda: sorted(set(POINT_FORMATS + MESH_FORMATS)))
    sampling: str = "uniform"  # meshes: "uniform" or "poisson"
    test_fraction: float = 0.0
    on_error: str = "raise"

    def __post_init__(self) -> None:
        if self.sampling not in SAMPLING:
            raise ConfigError(f"data.dataset.sampling {self.sampling!r} is unknown; accepted: {', '.join(SAMPLING)}")
        check_test_fraction(self.test_fraction)
        if self.on_error not in ON_ERROR:
            raise ConfigError(f"data.dataset.on_error {self.on_error!r} is unknown; accepted: {', '.join(ON_ERROR)}")

    def build(self, tokenizer, split: str) -> Dataset:
        check_split(split)
        files, labels, _ = list_class_folder(self.path, self.extensions, "point-cloud", "./clouds", POINT_FORMATS + MESH_FORMATS)
        if self.on_error == "skip":
            files, labels = keep_readable(files, labels, probe_points, "point-cloud", self.path, ACCEPTED)
        chosen = split_indices(len(files), self.test_fraction, split)
        return _Files([files[i] for i in chosen], [labels[i] for i in chosen], tokenizer.num_points, self)


ARRAY_FIELDS = ("points", "npy")
FILE_FIELDS = tuple(dict.fromkeys(s.lstrip(".") for s in POINT_FORMATS + MESH_FORMATS))  # ply, pcd, xyz, ..., obj, stl
LABEL_FIELDS = ("label", "cls")


def _array(value, name: str) -> np.ndarray:
    """[P, 3] float64 xyz of an array field: a list or array [P, 3+] (extra columns dropped), or .npy bytes."""
    try:
        if isinstance(value, (bytes, bytearray, memoryview, Mapping)):
            value = np.load(io.BytesIO(as_bytes(value, name)), allow_pickle=False)
        points = np.asarray(value, dtype=np.float64)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - numpy raises many types for ragged lists, text, damaged .npy
        raise DataError(
            f"field {name!r} cannot be read as an array of points ({' '.join(str(exc).split())}); "
            "accepted: [P, 3+] numbers (x, y, z first), as a list, an array or .npy bytes"
        ) from None
    if points.ndim != 2 or points.shape[1] < 3 or not len(points):
        raise DataError(
            f"field {name!r} holds points of shape {list(points.shape)}; accepted: [P, 3+] numbers (x, y, z first) with at least one point"
        )
    points = np.ascontiguousarray(points[:, :3])
    check_finite(points, f"field {name!r}", "point")
    return points


def from_record(tokenizer, record, generator=None) -> dict:
    """A streamed record as the folder's sample ``{"points": [P, 3], "label": int, "where": str}`` (`Modality.from_record`).

    Reads the first of ``points`` / ``npy`` (an array [P, 3+], as a list, an array or .npy bytes) or an
    encoded file named by its extension: ``ply``, ``pcd``, ``xyz``, ``xyzn``, ``xyzrgb``, ``pts`` or
    a mesh ``obj``, ``stl``, ``off``, ``gltf``, ``glb`` (bytes, or datasets' ``{"bytes", "path"}``), read
    and checked as `PointFolder` does (meshes sampled uniformly to ``num_points``, seeded). The
    optional label is ``label`` or ``cls`` (-1 without one). Nothing is random here (the tokenizer
    resamples with a seed), so ``generator`` is not used.
    """
    name, value = record_field(record, ARRAY_FIELDS + FILE_FIELDS)
    if name in ARRAY_FIELDS:
        points = _array(value, name)
    else:
        points = read_point_bytes(as_bytes(value, name), f".{name}", f"field {name!r}", tokenizer.num_points, PointFolder.sampling)
    key = record.get("__key__")
    label_name, label = record_field(record, LABEL_FIELDS, required=False)
    return {
        "points": points,
        "label": -1 if label_name is None else as_int(label, label_name),
        "where": f"record {key}, field {name!r}" if key else f"field {name!r}",
    }
