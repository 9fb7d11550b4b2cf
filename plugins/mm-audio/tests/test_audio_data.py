import numpy as np
import pytest
import soundfile as sf
import torch

from mm_audio import AudioFolder, FbankTokenizer, read_audio_file
from mmcore.errors import ConfigError, DataError

TOK = FbankTokenizer(sample_rate=16000, num_mel_bins=32, target_frames=32, patch_size=[8, 8])


def test_folder_reads_wav_flac_ogg_with_classes(tmp_path, write_audio):
    write_audio(tmp_path / "dog" / "a.wav")
    write_audio(tmp_path / "dog" / "b.flac", channels=2)
    write_audio(tmp_path / "cat" / "c.ogg")
    write_audio(tmp_path / "top.wav")
    (tmp_path / "notes.txt").write_text("not audio")
    ds = AudioFolder(path=str(tmp_path), random_crop=False).build(TOK, "train")
    assert [f.name for f in ds.files] == ["c.ogg", "a.wav", "b.flac", "top.wav"]
    assert ds.labels == [0, 1, 1, -1] and ds.classes == ["cat", "dog"]
    items = [ds[i] for i in range(4)]
    assert all(abs(len(x["wave"]) - 8000) < 200 for x in items)  # ogg may add a few samples of codec delay
    assert torch.allclose(items[1]["wave"], items[2]["wave"], atol=1e-4)  # flac is lossless, stereo averaged
    batch = TOK.collate(items)
    assert batch["fbank"].shape == (4, 32, 32) and "num_frames" not in batch  # 0.5 s > 32 frames
    splits = [AudioFolder(path=str(tmp_path), test_fraction=0.5).build(TOK, s) for s in ("train", "test")]
    assert sorted(f.name for s in splits for f in s.files) == ["a.wav", "b.flac", "c.ogg", "top.wav"]


def test_sample_rate_mismatch_resamples_or_fails(tmp_path, write_audio):
    write_audio(tmp_path / "hi.wav", seconds=0.5, rate=44100, freq=1000.0)
    ds = AudioFolder(path=str(tmp_path), random_crop=False).build(TOK, "train")
    wave = ds[0]["wave"]
    assert abs(len(wave) - 8000) <= 1
    spectrum = torch.fft.rfft(wave).abs()
    assert abs(int(spectrum.argmax()) * 16000 / len(wave) - 1000) < 5  # the tone keeps its pitch
    strict = AudioFolder(path=str(tmp_path), resample=False).build(TOK, "train")
    with pytest.raises(DataError, match=r"hi.wav has sample rate 44100 Hz but the recipe expects 16000 Hz.*resample=true"):
        strict[0]


def test_bad_files_raise_naming_the_file_or_are_skipped_and_counted(tmp_path, write_audio):
    good = write_audio(tmp_path / "good.wav")
    (tmp_path / "garbage.wav").write_bytes(b"RIFF not really a wav file" * 10)
    full = write_audio(tmp_path / "x.flac").read_bytes()
    (tmp_path / "x.flac").unlink()
    (tmp_path / "cut.flac").write_bytes(full[: len(full) // 2])
    wav = good.read_bytes()
    (tmp_path / "cut.wav").write_bytes(wav[: len(wav) // 2])
    sf.write(str(tmp_path / "empty.wav"), np.zeros(0, np.float32), 16000)
    write_audio(tmp_path / "tiny.wav", seconds=0.01)
    ds = AudioFolder(path=str(tmp_path), random_crop=False).build(TOK, "train")
    expected = {
        "cut.flac": r"cannot decode audio .*cut.flac: .*accepted: WAV, FLAC or OGG",
        "cut.wav": r"audio .*cut.wav is truncated: its header declares 16000 data bytes but only \d+ are present",
        "empty.wav": r"audio .*empty.wav has no samples \(zero length\)",
        "garbage.wav": r"cannot decode audio .*garbage.wav: .*Format not recognised",
        "tiny.wav": r"audio .*tiny.wav has 160 samples at 16000 Hz, shorter than one 25 ms analysis window",
    }
    for i, f in enumerate(ds.files):
        if f.name in expected:
            with pytest.raises(DataError, match=expected[f.name]):
                ds[i]
    assert ds[[f.name for f in ds.files].index("good.wav")]["wave"].shape == (8000,)

    # a header probe at build time drops what it can see is broken, and says so with a count
    with pytest.warns(UserWarning, match=r"skipped 3 of 6 audio files .*cut.wav is truncated.*empty.wav has no samples.*garbage.wav"):
        skipping = AudioFolder(path=str(tmp_path), on_error="skip", random_crop=False).build(TOK, "train")
    assert [f.name for f in skipping.files] == ["cut.flac", "good.wav", "tiny.wav"]
    # what fails only when decoded is replaced by the next readable file, named and counted
    with pytest.warns(UserWarning, match=r"skipped audio file \(1 so far in this process\): cannot decode audio .*cut.flac"):
        item = skipping[0]
    assert torch.equal(item["wave"], skipping.load(1)["wave"])
    with pytest.warns(UserWarning) as record:
        skipping[2]  # tiny.wav, then (wrapping round) cut.flac again, then good.wav
    assert [str(w.message).split(":")[0] for w in record] == [
        "skipped audio file (2 so far in this process)",
        "skipped audio file (3 so far in this process)",
    ]
    assert [p.rsplit("/", 1)[1] for p in skipping.skipped] == ["cut.flac", "tiny.wav", "cut.flac"]


def test_random_crop_only_in_train(tmp_path, write_audio):
    write_audio(tmp_path / "long.wav", seconds=2.0)
    crop = int(31 * 0.010 * 16000 + 400)  # 32 frames of 10 ms hop with a 25 ms window
    train = AudioFolder(path=str(tmp_path)).build(TOK, "train")
    assert len(train[0]["wave"]) == crop
    test = AudioFolder(path=str(tmp_path), test_fraction=0.5).build(TOK, "test")
    assert len(test) == 0 or len(test[0]["wave"]) == 32000


def test_folder_errors(tmp_path):
    with pytest.raises(ConfigError, match="data.dataset.path is required"):
        AudioFolder().build(TOK, "train")
    with pytest.raises(DataError, match="does not exist"):
        AudioFolder(path=str(tmp_path / "nope")).build(TOK, "train")
    with pytest.raises(DataError, match=r"holds no audio files; accepted: \.flac, \.ogg, \.wav"):
        AudioFolder(path=str(tmp_path)).build(TOK, "train")
    with pytest.raises(ConfigError, match="on_error 'ignore'"):
        AudioFolder(on_error="ignore")


def test_read_audio_file_resamples(tmp_path, write_audio):
    sample = read_audio_file(TOK, write_audio(tmp_path / "a.flac", seconds=0.25, rate=8000))
    assert sample["wave"].shape == (4000,) and sample["label"] == -1
