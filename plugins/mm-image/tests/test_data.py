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
    with pytest.raises(DataError, match=r"holds no image files; accepted: \.bmp, \.jpeg"):
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
    with pytest.raises(DataError, match=r"gray.png has mode 'L' \(1 channel\) but the recipe expects 3 channels; set data.dataset.convert=true"):
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
