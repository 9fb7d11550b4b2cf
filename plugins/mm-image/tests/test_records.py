"""`from_record`: streamed records (webdataset and Hugging Face datasets forms) give the folder's samples."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

import mm_image
from mm_image import ImageFolder, ImageTokenizer
from mm_image.files import from_record
from mmcore.errors import DataError
from mmcore.plugins import Registry

TOK = ImageTokenizer(image_size=[8, 8], patch_size=4, channels=3)


def write(path, mode="RGB", size=(20, 12), fmt=None):
    """A real picture (a gradient, so resizing and cropping show) written with Pillow."""
    path.parent.mkdir(parents=True, exist_ok=True)
    w, h = size
    arr = (np.arange(h * w * 3).reshape(h, w, 3) * 7 % 256).astype(np.uint8)
    img = Image.fromarray(arr).convert(mode)
    img.save(path, fmt)
    return path


def test_registered():
    registry = Registry()
    assert registry.add_plugin(mm_image, "image").error is None
    assert registry.modality("image").from_record is from_record and registry.streams("image")


@pytest.mark.parametrize("name,fmt", [("a.png", None), ("b.jpg", "JPEG"), ("c.webp", "WEBP")])
def test_both_record_forms_equal_the_folder_sample(tmp_path, name, fmt):
    path = write(tmp_path / "cat" / name, fmt=fmt)
    write(tmp_path / "dog" / "other.png")
    folder = ImageFolder(path=str(tmp_path)).build(TOK, "train")
    expected = folder[[f.name for f in folder.files].index(name)]
    data, ext = path.read_bytes(), name.split(".")[1]
    webdataset = from_record(TOK, {"__key__": "000001", ext: data, "cls": b"0"}, torch.Generator().manual_seed(0))
    hf = from_record(TOK, {"image": {"bytes": data, "path": None}, "label": np.int64(0)}, None)
    for sample in (webdataset, hf):
        assert sample["label"] == expected["label"] == 0
        assert sample["image"].shape == (3, 8, 8) and torch.equal(sample["image"], expected["image"])
    batch = TOK.collate([webdataset, hf])
    assert batch["images"].shape == (2, 3, 8, 8) and batch["labels"].tolist() == [0, 0]
    tokens = TOK.tokenize(batch)
    assert tokens.values.shape[:2] == (2, 4)


def test_gray_record_is_converted_and_label_is_optional(tmp_path):
    path = write(tmp_path / "g.png", mode="L")
    expected = ImageFolder(path=str(tmp_path), convert=True).build(TOK, "train")[0]
    sample = from_record(TOK, {"png": path.read_bytes()}, None)
    assert sample["label"] == -1 and torch.equal(sample["image"], expected["image"])
    gray = ImageTokenizer(image_size=[8, 8], patch_size=4, channels=1)
    assert from_record(gray, {"png": path.read_bytes()}, None)["image"].shape == (1, 8, 8)


def test_bad_records_name_the_field(tmp_path):
    good = write(tmp_path / "a.png").read_bytes()
    with pytest.raises(DataError, match=r"cannot decode image field 'png'"):
        from_record(TOK, {"__key__": "1", "png": b"not a png at all" * 4}, None)
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(buf, "JPEG")
    with pytest.raises(DataError, match=r"cannot decode image field 'jpg'"):
        from_record(TOK, {"jpg": buf.getvalue()[:200]}, None)  # truncated
    with pytest.raises(DataError, match=r"no field 'image' / 'png'.*its fields: txt"):
        from_record(TOK, {"__key__": "1", "txt": b"a caption"}, None)
    with pytest.raises(DataError, match=r"field 'image' is a int"):
        from_record(TOK, {"image": 3}, None)
    with pytest.raises(DataError, match=r"field 'cls' is .*cat.*expected an integer label"):
        from_record(TOK, {"png": good, "cls": b"cat"}, None)
