import re
import time

import numpy as np
import pytest
import torch
from PIL import Image

from mm_image import ImageFolder, ImageTokenizer, MnistDemo, read_image_file
from mmcore.errors import ConfigError, DataError


def rgb(path, size=(20, 16), color=(255, 0, 0), fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, fmt)
    return path


def test_mnist_demo_sizes_labels_and_speed():
    tok = ImageTokenizer(image_size=[28, 28], patch_size=4, channels=1)
    train, test = MnistDemo().build(tok, "train"), MnistDemo().build(tok, "test")
    assert (len(train), len(test)) == (4000, 1000)
    start = time.perf_counter()
    items = [test[i] for i in range(1000)]
    assert time.perf_counter() - start < 2.0
    assert items[0]["image"].shape == (1, 28, 28) and items[0]["image"].dtype == torch.float32
    assert 0.0 <= min(x["image"].min() for x in items) and max(x["image"].max() for x in items) == 1.0
    assert sorted({x["label"] for x in items}) == list(range(10))  # shuffled before the split
    big = MnistDemo(num_train=10).build(ImageTokenizer(image_size=[32, 48], patch_size=16, channels=3), "train")
    assert len(big) == 10 and big[0]["image"].shape == (3, 32, 48)
    assert torch.equal(big[0]["image"][0], big[0]["image"][2])
    with pytest.raises(ConfigError, match="num_train 5000"):
        MnistDemo(num_train=5000)
    with pytest.raises(ConfigError, match="'valid'"):
        MnistDemo().build(tok, "valid")


def test_image_folder_classes_labels_and_split(tmp_path):
    rgb(tmp_path / "cat" / "a.png")
    rgb(tmp_path / "cat" / "nested" / "b.jpg", color=(0, 255, 0))
    rgb(tmp_path / "dog" / "c.JPEG", size=(64, 32), fmt="JPEG")
    rgb(tmp_path / "top.png")
    (tmp_path / "notes.txt").write_text("not an image")
    tok = ImageTokenizer(image_size=[8, 8], patch_size=4, channels=3)
    ds = ImageFolder(path=str(tmp_path)).build(tok, "train")
    assert ds.classes == ["cat", "dog"]
    assert [f.name for f in ds.files] == ["a.png", "b.jpg", "c.JPEG", "top.png"]
    assert ds.labels == [0, 0, 1, -1]
    item = ds[0]
    assert item["image"].shape == (3, 8, 8) and item["label"] == 0
    assert torch.allclose(item["image"][:, 4, 4], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(ds[1]["image"][:, 4, 4], torch.tensor([0.0, 1.0, 0.0]), atol=0.02)  # JPEG is lossy
    splits = [ImageFolder(path=str(tmp_path), test_fraction=0.5).build(tok, s) for s in ("train", "test")]
    assert [len(s) for s in splits] == [2, 2]
    assert sorted(f.name for s in splits for f in s.files) == ["a.png", "b.jpg", "c.JPEG", "top.png"]
    again = ImageFolder(path=str(tmp_path), test_fraction=0.5).build(tok, "test")
    assert again.files == splits[1].files


def test_image_folder_resizes_shorter_side_and_center_crops(tmp_path):
    img = np.zeros((8, 16, 3), dtype=np.uint8)
    img[:, 4:12] = 255  # white centre band, black sides
    Image.fromarray(img).save(tmp_path / "wide.png")
    x = ImageFolder(path=str(tmp_path)).build(ImageTokenizer(image_size=[8, 8], patch_size=4), "train")[0]["image"]
    assert x.shape == (3, 8, 8) and x.min() > 0.9  # the crop keeps only the centre


def test_image_folder_errors_name_the_file(tmp_path):
    tok = ImageTokenizer(image_size=[8, 8], patch_size=4, channels=3)
    with pytest.raises(DataError, match=r"missing does not exist.*\.png"):
        ImageFolder(path=str(tmp_path / "missing")).build(tok, "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"holds no image files; accepted: \.bmp, \.gif, \.jfif, \.jpeg, \.jpg, \.png, \.tif, \.tiff"):
        ImageFolder(path=str(tmp_path / "empty")).build(tok, "train")
    with pytest.raises(ConfigError, match="data.dataset.path is required"):
        ImageFolder().build(tok, "train")

    bad = tmp_path / "bad"
    rgb(bad / "ok.png")
    (bad / "garbage.png").write_bytes(b"definitely not a png" * 10)
    full = (bad / "ok.png").read_bytes()
    (bad / "truncated.png").write_bytes(full[: len(full) // 2])
    ds = ImageFolder(path=str(bad)).build(tok, "train")
    assert [f.name for f in ds.files] == ["garbage.png", "ok.png", "truncated.png"]
    for i in (0, 2):
        with pytest.raises(DataError, match=rf"cannot decode image .*{ds.files[i].name}: .*accepted: PNG/JPEG"):
            ds[i]
    assert ds[1]["image"].shape == (3, 8, 8)


def test_channel_mismatch_and_convert(tmp_path):
    Image.fromarray(np.full((8, 8), 128, dtype=np.uint8), mode="L").save(tmp_path / "gray.png")
    rgb_tok = ImageTokenizer(image_size=[8, 8], patch_size=4, channels=3)
    with pytest.raises(
        DataError, match=r"gray.png has mode 'L' \(1 channel\) but the recipe expects 3 channels; set data.dataset.convert=true"
    ):
        ImageFolder(path=str(tmp_path)).build(rgb_tok, "train")[0]
    x = ImageFolder(path=str(tmp_path), convert=True).build(rgb_tok, "train")[0]["image"]
    assert x.shape == (3, 8, 8) and torch.allclose(x, torch.full_like(x, 128 / 255))

    color = tmp_path / "color"
    rgb(color / "red.png")
    Image.new("RGBA", (8, 8), (0, 0, 255, 128)).save(color / "alpha.png")
    gray_tok = ImageTokenizer(image_size=[8, 8], patch_size=4, channels=1)
    with pytest.raises(DataError, match=r"has mode 'RGBA' \(4 channels\) but the recipe expects 1 channel;"):
        ImageFolder(path=str(color)).build(gray_tok, "train")[0]
    assert ImageFolder(path=str(color)).build(rgb_tok, "train")[0]["image"][2].min() == 1.0  # alpha dropped silently
    assert ImageFolder(path=str(color), convert=True).build(gray_tok, "train")[1]["image"].shape == (1, 8, 8)


def test_hflip_only_in_train(tmp_path):
    img = np.zeros((8, 8, 3), dtype=np.uint8)
    img[:, :4] = 255
    Image.fromarray(img).save(tmp_path / "half.png")
    tok = ImageTokenizer(image_size=[8, 8], patch_size=4)
    torch.manual_seed(0)
    train = ImageFolder(path=str(tmp_path), hflip=True).build(tok, "train")
    seen = {train[0]["image"][0, 0, 0].item() for _ in range(20)}
    assert seen == {0.0, 1.0}
    assert not ImageFolder(path=str(tmp_path), hflip=True).build(tok, "test").hflip


def test_get_draws_every_flip_from_the_generator(tmp_path):
    """Exact resume: the same (index, seeded generator) gives the same sample; other seeds flip differently."""
    img = np.zeros((8, 8, 3), dtype=np.uint8)
    img[:, :4] = 255
    Image.fromarray(img).save(tmp_path / "half.png")
    train = ImageFolder(path=str(tmp_path), hflip=True).build(ImageTokenizer(image_size=[8, 8], patch_size=4), "train")

    def draw(seed):
        torch.manual_seed(seed + 1000)  # the global generator must not matter
        return train.get(0, torch.Generator().manual_seed(seed))["image"]

    assert all(torch.equal(draw(s), draw(s)) for s in range(10))
    assert {draw(s)[0, 0, 0].item() for s in range(10)} == {0.0, 1.0}
    for seed in range(5):  # __getitem__(i) is get(i, None): the global generator, as before
        torch.manual_seed(seed)
        a = train[0]["image"]
        torch.manual_seed(seed)
        assert torch.equal(a, train.get(0, None)["image"])


def test_read_image_file(tmp_path):
    tok = ImageTokenizer(image_size=[32, 32], patch_size=16, channels=3)
    path = rgb(tmp_path / "odd.png", size=(45, 30))  # W x H
    with pytest.raises(DataError, match=r"odd.png is 30x45 \(HxW\).*patch size 16.*nearest \[H, W\] = \[32, 48\].*\[16, 32\]"):
        read_image_file(tok, path)
    sample = read_image_file(tok, path, size=[32, 48])
    assert sample["image"].shape == (3, 32, 48)
    assert tok.tokenize(tok.collate([sample])).meta["grid"] == (2, 3)
    assert read_image_file(tok, rgb(tmp_path / "fine.png", size=(64, 16)))["image"].shape == (3, 16, 64)
    with pytest.raises(DataError, match="recipe expects 1 channel"):
        read_image_file(ImageTokenizer(image_size=[16, 16], patch_size=16, channels=1), path)


def gray16(path, value=40000, size=(8, 8)):
    Image.fromarray(np.full(size[::-1], value, dtype=np.uint16)).save(path)
    return path


@pytest.mark.parametrize("channels", [1, 3])
def test_16_bit_gray_is_scaled_by_its_range_not_clipped(tmp_path, channels):
    gray16(tmp_path / "deep.png")
    gray16(tmp_path / "deep.tif", value=1000)
    tok = ImageTokenizer(image_size=[8, 8], patch_size=4, channels=channels)
    ds = ImageFolder(path=str(tmp_path), convert=True).build(tok, "train")
    assert [f.name for f in ds.files] == ["deep.png", "deep.tif"]  # .tif is read by default
    for i, value in enumerate((40000, 1000)):
        x = ds[i]["image"]
        assert x.shape == (channels, 8, 8) and torch.allclose(x, torch.full_like(x, value / 65535), atol=1e-6)
    resized = read_image_file(tok, tmp_path / "deep.png", size=[4, 4], convert=True)["image"]
    assert torch.allclose(resized, torch.full_like(resized, 40000 / 65535), atol=1e-4)


def test_float_and_32_bit_modes_are_checked_by_range(tmp_path):
    tok = ImageTokenizer(image_size=[4, 4], patch_size=4, channels=1)
    Image.fromarray(np.full((4, 4), 0.25, np.float32)).save(tmp_path / "unit.tif")
    assert torch.allclose(read_image_file(tok, tmp_path / "unit.tif")["image"], torch.tensor(0.25))
    Image.fromarray(np.full((4, 4), 7.5, np.float32)).save(tmp_path / "hdr.tif")
    with pytest.raises(DataError, match=r"hdr.tif has mode 'F' \(32-bit float\) with values from 7.5 to 7.5.*accepted: 0 to 1"):
        read_image_file(tok, tmp_path / "hdr.tif")
    nan = np.full((4, 4), 0.5, np.float32)
    nan[2, 1] = np.nan
    Image.fromarray(nan).save(tmp_path / "nan.tif")
    with pytest.raises(DataError, match=r"nan.tif \(mode 'F'\) holds a non-finite value nan at row 2, column 1"):
        read_image_file(tok, tmp_path / "nan.tif")
    Image.fromarray(np.full((4, 4), 70000, np.int32)).save(tmp_path / "wide.tif")
    with pytest.raises(DataError, match=r"wide.tif has mode 'I' \(32-bit integer\) with values from 70000.*0 to 65535"):
        read_image_file(tok, tmp_path / "wide.tif")


def test_palette_cmyk_and_unconvertible_modes(tmp_path):
    rgb_tok = ImageTokenizer(image_size=[4, 4], patch_size=4, channels=3)
    pal = Image.new("P", (4, 4))
    pal.putpalette([10, 20, 30] * 256)
    pal.save(tmp_path / "pal.png")
    assert torch.allclose(read_image_file(rgb_tok, tmp_path / "pal.png")["image"][:, 0, 0], torch.tensor([10, 20, 30]) / 255)
    Image.new("CMYK", (4, 4), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    red = read_image_file(rgb_tok, tmp_path / "cmyk.jpg")["image"][:, 0, 0]
    assert red[0] > 0.9 and red[1:].max() < 0.1
    Image.new("LAB", (4, 4)).save(tmp_path / "lab.tif")
    with pytest.raises(DataError, match=r"lab.tif has mode 'LAB', which cannot be converted; accepted: gray"):
        read_image_file(rgb_tok, tmp_path / "lab.tif")


def test_on_error_skip_summarises_reasons_and_names_left_out_files(tmp_path):
    tok = ImageTokenizer(image_size=[8, 8], patch_size=4, channels=3)
    rgb(tmp_path / "a" / "ok.png")
    rgb(tmp_path / "a" / "other.tga", fmt="TGA")  # Pillow reads it, the default extensions do not
    (tmp_path / "a" / "garbage.png").write_bytes(b"not an image" * 20)
    (tmp_path / "a" / "noise.jpg").write_bytes(b"\xff\xd8\xff" + b"\x00" * 40)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "a" / "gray.png")
    full = (tmp_path / "a" / "ok.png").read_bytes()
    (tmp_path / "a" / "cut.png").write_bytes(full[: len(full) - 30])
    with pytest.warns(UserWarning) as record:
        ds = ImageFolder(path=str(tmp_path), on_error="skip").build(tok, "train")
    messages = [str(w.message) for w in record]
    assert any(
        re.search(r"left out 1 file\(s\) whose extension is not in data.dataset.extensions \(1 \.tga, e.g. a/other.tga\)", m)
        for m in messages
    ), messages
    summary = next(m for m in messages if m.startswith("skipped"))
    assert re.match(
        r"skipped 3 of 5 image files \(data.dataset.on_error=skip\): 2 cannot be decoded \(a/garbage.png, "
        r"a/noise.jpg\), 1 wrong channel count \(a/gray.png\) \| cannot decode image .*garbage.png",
        summary,
    ), summary
    assert [f.name for f in ds.files] == ["cut.png", "ok.png"]  # cut.png's header is fine: it fails when decoded
    with pytest.warns(UserWarning, match=r"skipped image file \(1 so far in this process\): cannot decode image .*cut.png"):
        assert ds[0]["image"].shape == (3, 8, 8)
    with pytest.raises(ConfigError, match="on_error 'ignore' is unknown"):
        ImageFolder(on_error="ignore")
