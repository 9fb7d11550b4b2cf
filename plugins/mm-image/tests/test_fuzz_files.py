"""Real image files, truncated, with bytes flipped or header ranges overwritten.

The property: the reader returns a valid sample (finite, in [0, 1], the
expected shape) or raises a DataError naming the file; any other exception,
a non-finite value or a hang (60 s) fails. ``MM_FUZZ_EXAMPLES`` sets the
examples per format (60 here; a benchmark run uses 1000).
"""

import faulthandler
import os
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mm_image import ImageTokenizer, read_image_file
from mm_image.files import probe_image
from mmcore.errors import DataError

FUZZ = settings(max_examples=int(os.environ.get("MM_FUZZ_EXAMPLES", "60")), deadline=None, derandomize=True,
                database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# one mutation of a file of any length: offsets are taken modulo its length
MUTATIONS = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 2**24)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.integers(0, 2**24), st.integers(1, 255)), min_size=1, max_size=8)),
    st.tuples(st.just("header"), st.tuples(st.integers(0, 255), st.binary(min_size=1, max_size=16))),
)


def mutate(data: bytes, mutation) -> bytes:
    kind, arg = mutation
    if kind == "truncate":
        return data[: arg % len(data)]
    out = bytearray(data)
    if kind == "flip":
        for at, bits in arg:
            out[at % len(out)] ^= bits
    else:
        start, chunk = arg
        start %= len(out)
        out[start: start + len(chunk)] = chunk[: len(out) - start]
    return bytes(out)


@contextmanager
def no_hang(seconds: float = 60):
    """A decoder stuck in C cannot be interrupted: dump every thread's stack and exit the run instead."""
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


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

    @FUZZ
    @given(mutation=MUTATIONS)
    def check(mutation):
        path.write_bytes(mutate(originals[name], mutation))
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
