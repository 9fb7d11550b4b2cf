"""mm-video: the video modality for mmcore (VideoMAE on tubelets, tube masking).

This module holds only the hook implementations mmcore discovers through the
``mmcore`` entry point; the parts live in their own modules.
"""

from __future__ import annotations

from mmcore.contract import Modality
from mmcore.continuous import PatchEmbedder
from mmcore.continuous import PatchTarget as PixelTarget
from mmcore.continuous import RegressionHead as PatchHead
from mmcore.hookspecs import hookimpl
from mmcore.plugins import recipes_in

from .data import MovingDigits, VideoFolder, from_record
from .files import read_video, read_video_file
from .masking import RandomMasking, TubeMasking
from .picture import frame_strip
from .tokenizer import VideoTokenizer

__all__ = [
    "MovingDigits",
    "PatchEmbedder",
    "PatchHead",
    "PixelTarget",
    "RandomMasking",
    "TubeMasking",
    "VideoFolder",
    "VideoTokenizer",
    "frame_strip",
    "read_video",
    "read_video_file",
]


@hookimpl
def register_modalities(register):
    register(
        Modality(
            name="video",
            tokenizer=VideoTokenizer,
            embedder=PatchEmbedder,
            head=PatchHead,
            default_policy="tube",
            default_target="pixels",
            style="mae",
            picture=frame_strip,
            read_file=read_video_file,
            from_record=from_record,
            description="Video as 2x16x16 tubelets (VideoMAE): tube masking at 90%, pixel targets with norm_pix.",
        )
    )


@hookimpl
def register_masking_policies(register):
    register("video", "tube", TubeMasking)
    register("video", "random", RandomMasking)


@hookimpl
def register_targets(register):
    register("video", "pixels", PixelTarget)


@hookimpl
def register_datasets(register):
    register("video", "moving-digits", MovingDigits)
    register("video", "folder", VideoFolder)


@hookimpl
def register_recipes(register):
    for name, path in recipes_in(__name__):
        register(name, path)
