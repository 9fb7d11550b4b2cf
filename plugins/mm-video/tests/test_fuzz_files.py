"""Real video files, truncated, with bytes flipped or header ranges overwritten.

The property: the reader returns a clip of the expected shape (uint8
[C, T, H, W]) or raises a DataError naming the file; any other exception or
a hang (60 s) fails. ``MM_FUZZ_EXAMPLES`` sets the examples per format (60
here; a benchmark run uses 1000).
"""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from mm_video import read_video
from mm_video.files import probe_video
from mmcore.errors import DataError
from mmcore.testing import corrupted, fuzz_settings, no_hang

FORMATS = {"h264.mp4": "libx264", "vp8.webm": "libvpx", "vp9.webm": "libvpx-vp9", "mpeg4.avi": "mpeg4"}


@pytest.fixture(scope="module")
def originals(tmp_path_factory, write_video):
    folder = tmp_path_factory.mktemp("originals")
    return {name: write_video(folder / name, frames=12, codec=codec).read_bytes() for name, codec in FORMATS.items()}


@pytest.mark.parametrize("name", list(FORMATS))
def test_damaged_videos_give_a_clip_or_a_data_error(originals, tmp_path, name):
    path = tmp_path / name

    def read(seed):
        return read_video(
            path,
            num_frames=4,
            stride=3,
            size=(16, 16),
            channels=3,
            start="random",
            generator=torch.Generator().manual_seed(seed),
            min_stride=1,
        )

    path.write_bytes(originals[name])
    assert read(0).shape == (3, 4, 16, 16)  # the original reads

    @fuzz_settings()
    @given(data=corrupted(originals[name]), seed=st.integers(0, 2**16))
    def check(data, seed):
        path.write_bytes(data)
        with no_hang():
            try:
                probe_video(path)
                clip = read(seed)
            except DataError as exc:
                assert str(path) in str(exc) and "\n" not in str(exc), str(exc)
                return
            assert clip.shape == (3, 4, 16, 16) and clip.dtype == torch.uint8

    check()
