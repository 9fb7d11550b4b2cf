"""`from_record`: streamed records (webdataset and Hugging Face datasets forms) give the folder's samples."""

import io

import numpy as np
import open3d as o3d
import pytest
import torch

import mm_pointcloud
from mm_pointcloud import PointFolder, PointGroupTokenizer
from mm_pointcloud.data import from_record, primitive
from mmcore.errors import DataError
from mmcore.plugins import Registry

TOK = PointGroupTokenizer(num_points=64, num_groups=8, group_size=8)
POINTS = np.random.default_rng(0).uniform(-1, 1, size=(150, 3))


def cloud(path, ascii=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(POINTS))
    assert o3d.io.write_point_cloud(str(path), pc, write_ascii=ascii)
    return path


def test_registered():
    registry = Registry()
    assert registry.add_plugin(mm_pointcloud, "pointcloud").error is None
    assert registry.modality("pointcloud").from_record is from_record and registry.streams("pointcloud")


@pytest.mark.parametrize("name", ["a.ply", "b.pcd", "c.xyz", "d.off"])
def test_both_record_forms_equal_the_folder_sample(tmp_path, name):
    path = tmp_path / "cls" / name
    if name.endswith(".off"):  # a mesh: sampled to num_points with a fixed seed
        path.parent.mkdir(parents=True)
        assert o3d.io.write_triangle_mesh(str(path), primitive("cube"))
    else:
        cloud(path, ascii=name.endswith(".ply"))
    expected = PointFolder(path=str(tmp_path)).build(TOK, "train")[0]
    data, ext = path.read_bytes(), name.split(".")[1]
    webdataset = from_record(TOK, {"__key__": "000001", ext: data, "cls": b"0"}, torch.Generator().manual_seed(0))
    hf = from_record(TOK, {ext: {"bytes": data, "path": None}, "label": 0}, None)
    for sample in (webdataset, hf):
        assert sample["label"] == expected["label"] == 0
        assert np.array_equal(sample["points"], expected["points"])
    assert webdataset["where"] == f"record 000001, field {ext!r}" and hf["where"] == f"field {ext!r}"
    batch = TOK.collate([webdataset, hf])
    assert batch["points"].shape == (2, 64, 3) and batch["labels"].tolist() == [0, 0]
    assert torch.equal(batch["points"][0], TOK.collate([expected])["points"][0])
    assert TOK.tokenize(batch).values.shape == (2, 8, 24)


def test_point_arrays(tmp_path):
    expected = PointFolder(path=str(cloud(tmp_path / "a.ply").parent)).build(TOK, "train")[0]
    with_colour = np.concatenate([POINTS, np.ones((150, 3))], axis=1)
    npy = io.BytesIO()
    np.save(npy, POINTS.astype(np.float32))
    for record in ({"points": POINTS.tolist()}, {"points": with_colour}, {"npy": npy.getvalue()}):
        sample = from_record(TOK, record, None)
        assert sample["label"] == -1 and np.allclose(sample["points"], expected["points"], atol=1e-6)
    assert TOK.collate([from_record(TOK, {"points": POINTS}, None)])["points"].shape == (1, 64, 3)


def test_bad_records_name_the_field(tmp_path):
    data = cloud(tmp_path / "a.ply").read_bytes()
    with pytest.raises(DataError, match=r"field 'ply': the PLY header declares 150 vertex rows but the file ends"):
        from_record(TOK, {"ply": data[: len(data) // 2]}, None)
    with pytest.raises(DataError, match=r"field 'ply' is not a PLY file"):
        from_record(TOK, {"ply": b"garbage" * 20}, None)
    with pytest.raises(DataError, match=r"field 'pcd' is empty"):
        from_record(TOK, {"pcd": b""}, None)
    pcd = cloud(tmp_path / "b.pcd", ascii=True).read_bytes()
    with pytest.raises(DataError, match=r"field 'pcd': the header declares 150 points but the file holds only"):
        from_record(TOK, {"pcd": pcd[: len(pcd) // 2]}, None)
    with pytest.raises(DataError, match=r"field 'points' holds points of shape \[150, 2\]"):
        from_record(TOK, {"points": POINTS[:, :2]}, None)
    with pytest.raises(DataError, match=r"field 'points' cannot be read as an array of points"):
        from_record(TOK, {"points": [[0, 1, 2], [3]]}, None)
    with pytest.raises(DataError, match=r"field 'points': point 3 \(row 4\) has a non-finite coordinate"):
        from_record(TOK, {"points": np.where(np.arange(150)[:, None] == 3, np.nan, POINTS)}, None)
    with pytest.raises(DataError, match=r"field 'npy' cannot be read as an array of points"):
        from_record(TOK, {"npy": b"not numpy"}, None)
    with pytest.raises(DataError, match=r"no field 'points' / 'npy' / 'ply'.*its fields: txt"):
        from_record(TOK, {"__key__": "1", "txt": b"a caption"}, None)
