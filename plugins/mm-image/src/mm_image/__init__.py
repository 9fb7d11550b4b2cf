"""mm-image: the image modality for mmcore (MAE, BEiT-style block and SimMIM masking).

This module holds only the hook implementations mmcore discovers through the
``mmcore`` entry point; the parts live in their own modules.
"""

from __future__ import annotations

from mmcore.contract import Modality
from mmcore.continuous import PatchTarget as PixelTarget
from mmcore.continuous import RegressionHead as PixelHead
from mmcore.hookspecs import hookimpl
from mmcore.plugins import recipes_in

from .data import ImageFolder, MnistDemo
from .embedder import PatchEmbedder
from .files import from_record, read_image_file
from .masking import BlockMasking, RandomMasking, SimMIMMasking
from .picture import reconstruction_grid
from .tokenizer import ImageTokenizer

__all__ = [
    "BlockMasking",
    "ImageFolder",
    "ImageTokenizer",
    "MnistDemo",
    "PatchEmbedder",
    "PixelHead",
    "PixelTarget",
    "RandomMasking",
    "SimMIMMasking",
    "read_image_file",
    "reconstruction_grid",
]


@hookimpl
def register_modalities(register):
    register(
        Modality(
            name="image",
            tokenizer=ImageTokenizer,
            embedder=PatchEmbedder,
            head=PixelHead,
            default_policy="random",
            default_target="pixels",
            style="mae",
            picture=reconstruction_grid,
            read_file=read_image_file,
            from_record=from_record,
            description="Images as patch tokens: MAE random, BEiT block and SimMIM masking; pixel targets with norm_pix.",
        )
    )


@hookimpl
def register_masking_policies(register):
    register("image", "random", RandomMasking)
    register("image", "block", BlockMasking)
    register("image", "simmim", SimMIMMasking)


@hookimpl
def register_targets(register):
    register("image", "pixels", PixelTarget)


@hookimpl
def register_datasets(register):
    register("image", "mnist-demo", MnistDemo)
    register("image", "folder", ImageFolder)


@hookimpl
def register_recipes(register):
    for name, path in recipes_in(__name__):
        register(name, path)
