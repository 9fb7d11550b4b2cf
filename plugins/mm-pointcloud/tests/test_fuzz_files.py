"""Real point-cloud and mesh files, truncated, with bytes flipped or header ranges overwritten.

The property: the reader returns finite [P, 3] points that the tokenizer
either takes (finite float32, the expected shape) or refuses with a
DataError, or the reader raises a DataError naming the file; any other
exception, a non-finite value or a hang (60 s) fails. ``MM_FUZZ_EXAMPLES``
sets the examples per format (60 here; a benchmark run uses 1000).
"""

import numpy as np
import open3d as o3d
import pytest
from hypothesis import given

from mm_pointcloud import PointGroupTokenizer, read_points
from mm_pointcloud.data import primitive
from mmcore.errors import DataError
from mmcore.testing import corrupted, fuzz_settings, no_hang


def cloud(ascii: bool, suffix: str):
    def write(path):
        points = np.random.default_rng(0).uniform(-1, 1, size=(100, 3))
        pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
        pc.colors = o3d.utility.Vector3dVector(np.random.default_rng(1).uniform(0, 1, size=(100, 3)))
        assert o3d.io.write_point_cloud(str(path), pc, write_ascii=ascii)

    return write


def mesh(ascii: bool):
    def write(path):
        assert o3d.io.write_triangle_mesh(str(path), primitive("octahedron"), write_ascii=ascii)

    return write


FORMATS = {
    "ascii.ply": cloud(True, ".ply"),
    "binary.ply": cloud(False, ".ply"),
    "mesh-ascii.ply": mesh(True),
    "mesh-binary.ply": mesh(False),
    "ascii.pcd": cloud(True, ".pcd"),
    "binary.pcd": cloud(False, ".pcd"),
}


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    folder = tmp_path_factory.mktemp("originals")
    files = {}
    for name, write in FORMATS.items():
        write(folder / name)
        files[name] = (folder / name).read_bytes()
    return files


@pytest.mark.parametrize("name", list(FORMATS))
def test_damaged_point_files_give_valid_points_or_a_data_error(originals, tmp_path, name):
    tok = PointGroupTokenizer(num_points=64, num_groups=8, group_size=8)
    path = tmp_path / name
    path.write_bytes(originals[name])
    assert tok.prepare(read_points(path, num_points=80), name).shape == (64, 3)  # the original reads

    @fuzz_settings()
    @given(data=corrupted(originals[name]))
    def check(data):
        path.write_bytes(data)
        with no_hang():
            try:
                points = read_points(path, num_points=80)
            except DataError as exc:
                assert str(path) in str(exc) and "\n" not in str(exc), str(exc)
                return
            assert points.ndim == 2 and points.shape[1] == 3 and len(points) > 0 and np.isfinite(points).all()
            try:
                x = tok.prepare(points, str(path))
            except DataError as exc:
                assert str(path) in str(exc) and "\n" not in str(exc), str(exc)
                return
            assert x.shape == (64, 3) and x.dtype == np.float32 and np.isfinite(x).all()

    check()
