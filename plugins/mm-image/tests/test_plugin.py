import torch

import mm_image
from mm_image import reconstruction_grid
from mmcore.plugins import Registry


def test_registers_everything():
    info = Registry().add_plugin(mm_image, "image")
    assert info.error is None
    s = info.summary()
    assert s["modalities"] == ["image"]
    assert s["masking_policies"] == ["image:block", "image:random", "image:simmim"]
    assert s["targets"] == ["image:pixels"] and s["datasets"] == ["image:folder", "image:mnist-demo"]


def test_reconstruction_grid_size_and_gray():
    batch = torch.rand(10, 1, 28, 28)
    masked = batch.clone()
    masked[:, :, :14] = float("nan")  # an unfilled hidden region renders gray
    img = reconstruction_grid(batch, masked, batch, max_rows=3)
    assert img.mode == "RGB" and img.size == (3 * 112 + 2 * 4, 3 * 112 + 2 * 4)
    assert img.getpixel((112 + 4 + 10, 10)) == (128, 128, 128)
    assert img.getpixel((112 + 1, 10)) == (255, 255, 255)  # the gap
    big = reconstruction_grid(*(torch.rand(2, 3, 128, 160) for _ in range(3)))
    assert big.size == (3 * 160 + 8, 2 * 128 + 4)
