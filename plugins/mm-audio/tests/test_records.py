"""`from_record`: streamed records (webdataset and Hugging Face datasets forms) give the folder's samples."""

import numpy as np
import pytest
import soundfile as sf
import torch

import mm_audio
from mm_audio import AudioFolder, FbankTokenizer
from mm_audio.data import from_record
from mmcore.errors import DataError
from mmcore.plugins import Registry

TOK = FbankTokenizer(sample_rate=16000, num_mel_bins=32, target_frames=32, patch_size=[8, 8])


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_registered():
    registry = Registry()
    assert registry.add_plugin(mm_audio, "audio").error is None
    assert registry.modality("audio").from_record is from_record and registry.streams("audio")


@pytest.mark.parametrize("name,rate,channels", [("a.wav", 16000, 1), ("b.flac", 22050, 2), ("c.ogg", 16000, 1)])
def test_both_record_forms_equal_the_folder_sample(tmp_path, write_audio, name, rate, channels):
    path = write_audio(tmp_path / "dog" / name, seconds=0.5, rate=rate, channels=channels)
    folder = AudioFolder(path=str(tmp_path)).build(TOK, "train")  # random crops, as records get
    expected = folder.get(0, gen(3))
    data, ext = path.read_bytes(), name.split(".")[1]
    webdataset = from_record(TOK, {"__key__": "000001", ext: data, "cls": b"0"}, gen(3))
    hf = from_record(TOK, {"audio": {"bytes": data, "path": None}, "label": 0}, gen(3))
    for sample in (webdataset, hf):
        assert sample["label"] == expected["label"] == 0
        assert torch.equal(sample["wave"], expected["wave"])
    assert len(expected["wave"]) < 8000  # cropped: 32 frames need 5360 samples
    assert not torch.equal(from_record(TOK, {ext: data}, gen(4))["wave"], expected["wave"])  # the window follows the generator
    batch = TOK.collate([webdataset, hf])
    assert batch["fbank"].shape == (2, 32, 32) and batch["labels"].tolist() == [0, 0]
    assert TOK.tokenize(batch).values.shape[:2] == (2, 16)


def test_decoded_datasets_audio_dict(tmp_path, write_audio):
    path = write_audio(tmp_path / "a.wav", seconds=0.5, rate=16000)  # float32 samples: the array is exact
    expected = AudioFolder(path=str(tmp_path)).build(TOK, "train").get(0, gen(1))
    array, rate = sf.read(str(path), dtype="float32")
    sample = from_record(TOK, {"audio": {"array": array, "sampling_rate": rate, "path": None}}, gen(1))
    assert sample["label"] == -1 and torch.equal(sample["wave"], expected["wave"])
    stereo = from_record(TOK, {"audio": {"array": np.stack([array, array]), "sampling_rate": rate}}, gen(1))
    assert torch.allclose(stereo["wave"], expected["wave"])


def test_bad_records_name_the_field(tmp_path, write_audio):
    good = write_audio(tmp_path / "a.wav").read_bytes()
    with pytest.raises(DataError, match=r"cannot decode audio field 'wav'"):
        from_record(TOK, {"wav": b"RIFF not really a wav file" * 10}, None)
    with pytest.raises(DataError, match=r"audio field 'wav' is truncated"):
        from_record(TOK, {"wav": good[: len(good) // 2]}, None)
    with pytest.raises(DataError, match=r"no field 'audio' / 'wav' / 'flac'.*its fields: txt"):
        from_record(TOK, {"__key__": "1", "txt": b"a caption"}, None)
    with pytest.raises(DataError, match=r"field 'audio' holds a non-finite sample"):
        from_record(TOK, {"audio": {"array": np.full(1000, np.nan), "sampling_rate": 16000}}, None)
    with pytest.raises(DataError, match=r"field 'audio' has a sampling_rate of 5 Hz"):
        from_record(TOK, {"audio": {"array": np.zeros(1000), "sampling_rate": 5}}, None)
    with pytest.raises(DataError, match=r"field 'audio' has 10 samples .* shorter than one 25 ms analysis window"):
        from_record(TOK, {"audio": {"array": np.zeros(10), "sampling_rate": 16000}}, None)
    with pytest.raises(DataError, match=r"field 'label' is .*expected an integer label"):
        from_record(TOK, {"wav": good, "label": "dog"}, None)
