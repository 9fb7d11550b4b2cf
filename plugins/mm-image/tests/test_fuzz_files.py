"""Real image files, truncated, with bytes flipped or header ranges overwritten.

The property: the reader returns a valid sample (finite, in [0, 1], the
expected shape) or raises a DataError naming the file; any other exception,
a non-finite value or a hang (60 s) fails. ``MM_FUZZ_EXAMPLES`` sets the
examples per format (60 here; a benchmark run uses 1000).
"""

import numpy as np
import pytest
import torch
from hypothesis import given
from PIL import Image

from mm_image import ImageTokenizer, read_image_file
from mm_image.files import probe_image
from mmcore.errors import DataError
from mmcore.testing import corrupted, fuzz_settings, no_hang


def picture(h=20, w=24) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 10, y * 12, (x + y) * 5], -1).astype(np.uint8)


FORMATS = {  # name → (writer, channels the recipe asks for)
    "png8.png": (lambda p: Image.fromarray(picture()).save(p), 3),
    "png16.png": (lambda p: Image.fromarray(picture()[..., 0].astype(np.uint16) * 257).save(p), 3),
    "photo.jpg": (lambda p: Image.fromarray(picture()).save(p, quality=90), 3),
    "scan.tif": (lambda p: Image.fromarray(picture()).save(p), 1),
    "deep.tif": (lambda p: Image.fromarray(picture()[..., 1].astype(np.uint16) * 200).save(p), 1),
}


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    folder = tmp_path_factory.mktemp("originals")
    files = {}
    for name, (write, _) in FORMATS.items():
        write(folder / name)
        files[name] = (folder / name).read_bytes()
    return files


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_damaged_images_give_a_valid_sample_or_a_data_error(originals, tmp_path, name):
    channels = FORMATS[name][1]
    tok = ImageTokenizer(image_size=[16, 16], patch_size=8, channels=channels)
    path = tmp_path / name
    path.write_bytes(originals[name])
    assert read_image_file(tok, path, size=[16, 16], convert=True)["image"].shape == (channels, 16, 16)  # the original reads

    @fuzz_settings()
    @given(data=corrupted(originals[name]))
    def check(data):
        path.write_bytes(data)
        with no_hang():
            for convert in (True, False):
                try:
                    probe_image(path, channels, convert)
                    x = read_image_file(tok, path, size=[16, 16], convert=convert)["image"]
                except DataError as exc:
                    assert str(path) in str(exc) and "\n" not in str(exc), str(exc)
                    continue
                assert x.shape == (channels, 16, 16) and x.dtype == torch.float32
                assert torch.isfinite(x).all() and 0 <= x.min() and x.max() <= 1

    check()
