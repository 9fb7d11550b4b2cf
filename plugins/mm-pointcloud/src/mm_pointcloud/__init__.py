"""mm-pointcloud: point clouds for mmcore (Point-MAE): FPS + kNN groups, mini-PointNet, Chamfer loss.

This module holds only the hook implementations mmcore discovers through the
``mmcore`` entry point; the parts live in their own modules.
"""

from __future__ import annotations

from mmcore.contract import Modality
from mmcore.hookspecs import hookimpl
from mmcore.plugins import recipes_in

from .data import SHAPES, PointFolder, ShapesDemo, from_record, make_shape
from .embedder import PointGroupEmbedder, max_mean_pool
from .files import read_point_file, read_points
from .geometry import farthest_point_sample, knn, normalise_unit_sphere
from .head import PointHead, chamfer
from .masking import BlockMasking, RandomMasking
from .picture import point_cloud_grid
from .target import PointTarget
from .tokenizer import PointGroupTokenizer

__all__ = [
    "SHAPES",
    "BlockMasking",
    "PointFolder",
    "PointGroupEmbedder",
    "PointGroupTokenizer",
    "PointHead",
    "PointTarget",
    "RandomMasking",
    "ShapesDemo",
    "chamfer",
    "farthest_point_sample",
    "knn",
    "make_shape",
    "max_mean_pool",
    "normalise_unit_sphere",
    "point_cloud_grid",
    "read_point_file",
    "read_points",
]


@hookimpl
def register_modalities(register):
    register(
        Modality(
            name="pointcloud",
            tokenizer=PointGroupTokenizer,
            embedder=PointGroupEmbedder,
            head=PointHead,
            default_policy="random",
            default_target="points",
            style="mae",
            picture=point_cloud_grid,
            read_file=read_point_file,
            from_record=from_record,
            pool=max_mean_pool,
            description="Point clouds as FPS + kNN point groups (Point-MAE): mini-PointNet, Chamfer loss, open3d readers.",
        )
    )


@hookimpl
def register_masking_policies(register):
    register("pointcloud", "random", RandomMasking)
    register("pointcloud", "block", BlockMasking)


@hookimpl
def register_targets(register):
    register("pointcloud", "points", PointTarget)


@hookimpl
def register_datasets(register):
    register("pointcloud", "shapes-demo", ShapesDemo)
    register("pointcloud", "folder", PointFolder)


@hookimpl
def register_recipes(register):
    for name, path in recipes_in(__name__):
        register(name, path)
