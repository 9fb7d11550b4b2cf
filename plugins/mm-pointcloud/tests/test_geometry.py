"""The batched torch FPS and kNN against open3d's CPU implementations on the same clouds."""

import numpy as np
import open3d as o3d
import torch

from mm_pointcloud import farthest_point_sample, knn, normalise_unit_sphere


def _clouds(batch=3, points=300, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, points, 3))


def test_fps_picks_the_same_points_as_open3d():
    clouds = _clouds()
    picked = farthest_point_sample(torch.from_numpy(clouds), 24)  # float64: exact same arithmetic as open3d
    for cloud, idx in zip(clouds, picked):
        pcd = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud))
        reference = np.asarray(pcd.farthest_point_down_sample(24).points)
        assert np.array_equal(np.sort(cloud[idx.numpy()], axis=0), np.sort(reference, axis=0))


def test_fps_in_float32_agrees_with_open3d_on_almost_every_pick():
    clouds = _clouds(seed=1)
    picked = farthest_point_sample(torch.from_numpy(clouds).float(), 24)
    for cloud, idx in zip(clouds, picked):
        ref = np.asarray(o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud)).farthest_point_down_sample(24).points)
        ours = {tuple(p) for p in cloud[idx.numpy()]}
        assert len(ours & {tuple(p) for p in ref}) >= 22


def test_knn_matches_open3d_kdtree():
    clouds = _clouds(batch=2, points=200, seed=2)
    queries = clouds[:, :10]
    ours = knn(torch.from_numpy(clouds), torch.from_numpy(queries), 12)
    for cloud, qs, idx in zip(clouds, queries, ours):
        tree = o3d.geometry.KDTreeFlann(o3d.geometry.PointCloud(o3d.utility.Vector3dVector(cloud)))
        for q, row in zip(qs, idx):
            _, ref, _ = tree.search_knn_vector_3d(q, 12)
            assert set(np.asarray(ref).tolist()) == set(row.tolist())


def test_normalise_unit_sphere():
    pts = normalise_unit_sphere(np.random.default_rng(3).normal(loc=5.0, scale=7.0, size=(100, 3)))
    assert np.allclose(pts.mean(0), 0, atol=1e-12) and np.isclose(np.linalg.norm(pts, axis=1).max(), 1.0)
