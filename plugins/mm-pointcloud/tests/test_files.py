"""Real .ply/.pcd/.xyz/.pts and mesh files written in tmp_path, read back through open3d."""

import numpy as np
import open3d as o3d
import pytest

from mmcore.errors import DataError
from mm_pointcloud import PointGroupTokenizer, read_points
from mm_pointcloud.data import primitive


@pytest.mark.parametrize("suffix", [".ply", ".pcd", ".xyz", ".pts"])
def test_point_formats_round_trip(tmp_path, suffix):
    points = np.random.default_rng(0).uniform(-1, 1, size=(150, 3))
    path = tmp_path / f"cloud{suffix}"
    assert o3d.io.write_point_cloud(str(path), o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points)))
    assert np.allclose(read_points(path), points, atol=1e-5)


@pytest.mark.parametrize("suffix,sampling", [(".obj", "uniform"), (".ply", "poisson"), (".stl", "uniform")])
def test_meshes_are_sampled_on_their_surface(tmp_path, suffix, sampling):
    path = tmp_path / f"sphere{suffix}"
    mesh = primitive("sphere")
    mesh.compute_vertex_normals()
    assert o3d.io.write_triangle_mesh(str(path), mesh)
    points = read_points(path, num_points=300, sampling=sampling)
    assert points.shape == (300, 3)
    radius = np.linalg.norm(points, axis=1)
    assert radius.max() <= 1.0 + 1e-6 and radius.min() > 0.95  # on the (faceted) unit sphere, not inside


def test_empty_file_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.ply"
    path.write_bytes(b"")
    with pytest.raises(DataError, match="empty.ply is empty"):
        read_points(path)


def test_nan_coordinates_are_reported_with_their_row(tmp_path):
    path = tmp_path / "holes.xyz"
    rows = [f"{i * 0.1} {i * 0.2} {i * 0.3}" for i in range(70)]
    rows[41] = "0.5 nan 0.1"
    path.write_text("\n".join(rows) + "\n")
    tok = PointGroupTokenizer(num_points=64, num_groups=8, group_size=8)
    points = read_points(path)
    with pytest.raises(DataError, match=r"holes.xyz: point 41 \(row 42\) has a non-finite coordinate"):
        tok.collate([{"points": points, "where": str(path)}])


def test_too_few_points_for_the_groups(tmp_path):
    tok = PointGroupTokenizer(num_points=256, num_groups=16, group_size=16)
    with pytest.raises(DataError, match="100 points, fewer than num_groups × group_size = 256"):
        tok.collate([{"points": np.random.default_rng(0).normal(size=(100, 3)), "where": "small.ply"}])


def test_mm_reconstruct_reads_a_ply_and_draws(tmp_path):
    from mmcore.cli import main
    from mmcore.model import MaskedModel
    from mmcore.testing import tiny_config

    tok = {"num_points": 64, "num_groups": 8, "group_size": 8}
    MaskedModel(tiny_config("pointcloud", "random", tokenizer=tok)).save_pretrained(tmp_path / "model")
    cloud = tmp_path / "cloud.ply"
    points = np.random.default_rng(1).normal(size=(90, 3))
    o3d.io.write_point_cloud(str(cloud), o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points)))
    out = tmp_path / "recon.png"
    assert main(["reconstruct", str(tmp_path / "model"), str(cloud), "-o", str(out)]) == 0
    from PIL import Image

    assert Image.open(out).size[0] > 100
