"""`from_record`: streamed records (webdataset and Hugging Face datasets forms) give the folder's samples."""

import pytest
import torch

import mm_video
from mm_video import VideoFolder, VideoTokenizer
from mm_video.data import from_record
from mmcore.errors import DataError
from mmcore.plugins import Registry

TOK = VideoTokenizer(num_frames=4, image_size=[16, 16], tubelet_size=[2, 8, 8], channels=3)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_registered():
    registry = Registry()
    assert registry.add_plugin(mm_video, "video").error is None
    assert registry.modality("video").from_record is from_record and registry.streams("video")


@pytest.mark.parametrize("name,codec", [("a.mp4", "libx264"), ("b.webm", "libvpx")])
def test_both_record_forms_equal_the_folder_sample(tmp_path, write_video, name, codec):
    path = write_video(tmp_path / "left" / name, frames=20, size=(32, 48), codec=codec)
    folder = VideoFolder(path=str(tmp_path)).build(TOK, "train")  # default stride, random windows: as records get
    expected = folder.get(0, gen(5))
    data, ext = path.read_bytes(), name.split(".")[1]
    webdataset = from_record(TOK, {"__key__": "000001", ext: data, "cls": b"0"}, gen(5))
    hf = from_record(TOK, {"video": {"bytes": data, "path": None}, "label": 0}, gen(5))
    for sample in (webdataset, hf):
        assert sample["label"] == expected["label"] == 0
        assert sample["video"].shape == (3, 4, 16, 16) and torch.equal(sample["video"], expected["video"])
    starts = {int(from_record(TOK, {ext: data}, gen(seed))["video"][0, 0].float().mean(0).argmax()) for seed in range(6)}
    assert len(starts) > 1  # the window follows the generator
    batch = TOK.collate([webdataset, hf])
    assert batch["clips"].shape == (2, 3, 4, 16, 16) and batch["labels"].tolist() == [0, 0]
    assert TOK.tokenize(batch).values.shape[:2] == (2, 8)


def test_bad_records_name_the_field(tmp_path, write_video):
    good = write_video(tmp_path / "good.mp4", frames=12).read_bytes()
    with pytest.raises(DataError, match=r"cannot decode video field 'mp4'"):
        from_record(TOK, {"mp4": b"\x00\x00\x00 ftypisom" + b"junk" * 100}, None)
    with pytest.raises(DataError, match=r"cannot decode video field 'mp4'"):
        from_record(TOK, {"mp4": good[: len(good) // 2]}, None)  # the moov atom (at the end) is lost
    short = write_video(tmp_path / "short.webm", frames=3, codec="libvpx").read_bytes()
    with pytest.raises(DataError, match=r"video field 'webm' has 3 frames, the clip needs 4"):
        from_record(TOK, {"webm": short}, None)
    with pytest.raises(DataError, match=r"field 'mp4' has no video stream"):
        from_record(TOK, {"mp4": write_video(tmp_path / "sound.mp4", audio=True).read_bytes()}, None)
    with pytest.raises(DataError, match=r"no field 'video' / 'mp4'.*its fields: txt"):
        from_record(TOK, {"__key__": "1", "txt": b"a caption"}, None)
    with pytest.raises(DataError, match=r"field 'video' is a list, expected an encoded file"):
        from_record(TOK, {"video": [1, 2]}, None)
