"""ImageFolder's train/test split is the one it drew inline before mmcore.splits (a torch permutation, seed 0)."""

from types import SimpleNamespace

import pytest
import torch

from mm_image import ImageFolder


def old_split(n, fraction, split):  # mm_image/data.py ImageFolder.build, before mmcore.splits
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0)).tolist()
    num_test = int(round(fraction * n))
    return sorted(order[:num_test] if split == "test" else order[num_test:])


@pytest.mark.parametrize("count, fraction", [(7, 0.3), (40, 0.25), (101, 0.1)])
def test_image_folder_split_is_unchanged(tmp_path, count, fraction):
    for i in range(count):  # listing and splitting read no pixels: empty files will do
        (tmp_path / ("cats" if i % 2 else "dogs")).mkdir(exist_ok=True)
        (tmp_path / ("cats" if i % 2 else "dogs") / f"{i:03}.png").touch()
    files = sorted(tmp_path.rglob("*.png"))
    tokenizer = SimpleNamespace(image_size=[8, 8], channels=1)
    for split in ("train", "test"):
        built = ImageFolder(path=str(tmp_path), test_fraction=fraction).build(tokenizer, split)
        assert built.files == [files[i] for i in old_split(count, fraction, split)]
