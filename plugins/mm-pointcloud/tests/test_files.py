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
    with pytest.raises(DataError, match=r"holes.xyz: point 41 \(row 42\) has a non-finite coordinate"):
        read_points(path)  # the reader refuses them
    points = np.array([[float(v) for v in row.split()] for row in rows])
    tok = PointGroupTokenizer(num_points=64, num_groups=8, group_size=8)
    with pytest.raises(DataError, match=r"memory: point 41 \(row 42\) has a non-finite coordinate"):
        tok.collate([{"points": points, "where": "memory"}])  # and so does the tokenizer, for samples made in memory


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


def write_cloud(path, points, ascii=True):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert o3d.io.write_point_cloud(str(path), o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points)), write_ascii=ascii)
    return path


CLOUD = np.random.default_rng(0).uniform(-1, 1, size=(100, 3))


@pytest.mark.parametrize("ascii", [True, False])
def test_ply_declaring_more_vertices_than_it_holds_is_refused(tmp_path, ascii):
    """open3d reads such a file as the real points plus zeros; the header's count is checked instead."""
    data = write_cloud(tmp_path / "full.ply", CLOUD, ascii).read_bytes()
    (tmp_path / "more.ply").write_bytes(data.replace(b"element vertex 100", b"element vertex 120"))
    (tmp_path / "cut.ply").write_bytes(data[: len(data) * 3 // 4])
    (tmp_path / "fewer.ply").write_bytes(data.replace(b"element vertex 100", b"element vertex 90"))
    with pytest.raises(DataError, match=r"more.ply: the PLY header declares 120 vertex rows but the file ends after 100"):
        read_points(tmp_path / "more.ply")
    with pytest.raises(DataError, match=r"cut.ply: the PLY header declares 100 vertex rows but the file ends after 7\d"):
        read_points(tmp_path / "cut.ply")
    with pytest.raises(DataError, match=r"fewer.ply: holds \d+ more (line|byte)\(s\) than its PLY header declares \(90 vertex\)"):
        read_points(tmp_path / "fewer.ply")
    assert np.allclose(read_points(tmp_path / "full.ply"), CLOUD, atol=1e-5)


@pytest.mark.parametrize("ascii", [True, False])
def test_ply_meshes_with_quads_and_bad_faces(tmp_path, ascii):
    mesh = primitive("cube")  # 12 triangles; written back as triangles, and as quads by hand below
    path = tmp_path / "cube.ply"
    assert o3d.io.write_triangle_mesh(str(path), mesh, write_ascii=ascii)
    assert read_points(path, num_points=200).shape == (200, 3)
    quads = tmp_path / "quad.ply"
    quads.write_text(
        "ply\nformat ascii 1.0\nelement vertex 4\nproperty float x\nproperty float y\nproperty float z\n"
        "element face 1\nproperty list uchar int vertex_indices\nend_header\n"
        "0 0 0\n1 0 0\n1 1 0\n0 1 0\n4 0 1 2 3\n"
    )
    points = read_points(quads, num_points=500)
    assert points.shape == (500, 3) and points[:, :2].min() >= 0 and points[:, :2].max() <= 1 and np.ptp(points[:, 0]) > 0.9
    quads.write_text(quads.read_text().replace("4 0 1 2 3", "4 0 1 2 7"))
    with pytest.raises(
        DataError, match=r"quad.ply: face 0 has corners \[0.0, 1.0, 2.0, 7.0\]; accepted: 3 or more vertex indices from 0 to 3"
    ):
        read_points(quads)
    quads.write_text(quads.read_text().replace("4 0 1 2 7", "3 0 1 1"))
    with pytest.raises(DataError, match=r"quad.ply: the mesh's 1 triangles have a total area of 0"):
        read_points(quads)


def test_declared_counts_of_pcd_pts_and_off(tmp_path):
    for suffix in (".pcd", ".pts"):
        data = write_cloud(tmp_path / f"full{suffix}", CLOUD).read_bytes()
        (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) // 2])
        with pytest.raises(
            DataError, match=rf"cut\{suffix}: the header declares 100 points but the file holds only (4\d|50) complete rows"
        ):
            read_points(tmp_path / f"cut{suffix}")
    data = write_cloud(tmp_path / "bin.pcd", CLOUD, ascii=False).read_bytes()
    (tmp_path / "bincut.pcd").write_bytes(data[:-100])
    with pytest.raises(DataError, match=r"bincut.pcd: the header declares 100 points but the file holds only 91"):
        read_points(tmp_path / "bincut.pcd")
    mesh = primitive("sphere")
    assert o3d.io.write_triangle_mesh(str(tmp_path / "s.off"), mesh)
    data = (tmp_path / "s.off").read_bytes()
    (tmp_path / "cut.off").write_bytes(data[: len(data) * 9 // 10])
    with pytest.raises(DataError, match=r"cut.off: the header declares \d+ vertices and \d+ faces but the file holds only"):
        read_points(tmp_path / "cut.off")


def test_identical_points_are_refused_not_blown_up_to_the_unit_sphere():
    from mm_pointcloud import normalise_unit_sphere

    tok = PointGroupTokenizer(num_points=64, num_groups=8, group_size=8)
    same = np.tile([[0.1, 0.2, 0.3]], (64, 1))
    assert np.abs(normalise_unit_sphere(same)).max() < 1e-12  # centred, not scaled by the residue
    with pytest.raises(
        DataError, match=r"same.ply: all 64 points coincide .*accepted: clouds with extent, or model.tokenizer.normalize=false"
    ):
        tok.collate([{"points": same, "where": "same.ply"}])
    unscaled = PointGroupTokenizer(num_points=64, num_groups=8, group_size=8, normalize=False)
    assert np.allclose(unscaled.collate([{"points": same}])["points"].numpy(), same)
    tiny = CLOUD[:64] * 1e-3 + 1e3  # a millimetre-scale shape a kilometre from the origin is real: kept
    assert np.isclose(np.linalg.norm(tok.prepare(tiny, "tiny"), axis=1).max(), 1.0, atol=1e-3)
    with pytest.raises(DataError, match=r"huge: a coordinate of 1e\+39 overflows float32"):
        unscaled.collate([{"points": np.full((64, 3), 1e39), "where": "huge"}])


def test_point_folder_on_error_skip_summarises_reasons(tmp_path):
    from mm_pointcloud import PointFolder
    from mmcore.errors import ConfigError

    good = write_cloud(tmp_path / "a" / "good.ply", CLOUD)
    data = good.read_bytes()
    (tmp_path / "a" / "cut.ply").write_bytes(data.replace(b"element vertex 100", b"element vertex 150"))
    (tmp_path / "b" / "empty.pcd").parent.mkdir()
    (tmp_path / "b" / "empty.pcd").write_bytes(b"")
    rows = [" ".join(map(str, r)) for r in CLOUD]
    rows[3] = "1 inf 2"
    (tmp_path / "b" / "inf.xyz").write_text("\n".join(rows))
    tok = PointGroupTokenizer(num_points=64, num_groups=8, group_size=8)
    with pytest.warns(
        UserWarning,
        match=r"skipped 3 of 4 point-cloud files \(data.dataset.on_error=skip\): 1 truncated \(a/cut.ply\), "
        r"1 empty \(b/empty.pcd\), 1 non-finite points \(b/inf.xyz\) \| .*cut.ply: the PLY header declares 150",
    ):
        ds = PointFolder(path=str(tmp_path), on_error="skip").build(tok, "train")
    assert [f.name for f in ds.files] == ["good.ply"] and ds[0]["label"] == 0
    raising = PointFolder(path=str(tmp_path)).build(tok, "train")
    with pytest.raises(DataError, match=r"inf.xyz: point 3 \(row 4\) has a non-finite coordinate"):
        raising[[f.name for f in raising.files].index("inf.xyz")]
    with pytest.raises(ConfigError, match="on_error 'ignore' is unknown"):
        PointFolder(on_error="ignore")


def test_ply_big_endian_and_damaged_rows(tmp_path):
    header = "ply\nformat binary_big_endian 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
    path = tmp_path / "be.ply"
    path.write_bytes(header.encode() + np.arange(9, dtype=">f4").tobytes())
    assert read_points(path).tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    text = "ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nend_header\n"
    path.write_text(text + "0 0 0\n1 x 2\n")
    with pytest.raises(
        DataError, match=r"be.ply: vertex row 1 \(data line 2\) is '1 x 2', which does not match the header's properties \['x', 'y', 'z'\]"
    ):
        read_points(path)
    path.write_text(text.replace("end_header", "element junk 5\nend_header"))
    with pytest.raises(DataError, match=r"be.ply: PLY element 'junk' has no properties"):
        read_points(path)
    path.write_text(text.replace("format ascii 1.0", "format ascii 2.0"))
    with pytest.raises(DataError, match=r"be.ply: PLY header line 2 'format ascii 2.0' is not valid"):
        read_points(path)
