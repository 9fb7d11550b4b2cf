"""What the reader decodes is checked: bit depths and channels, non-finite and mis-scaled samples,
a damaged header; `fit` refuses non-finite statistics; crops come from the caller's generator."""

import numpy as np
import pytest
import soundfile as sf
import torch
from mm_audio import AudioFolder, FbankTokenizer
from mm_audio.files import load_audio
from mmcore.errors import DataError

TOK = FbankTokenizer(sample_rate=16000, num_mel_bins=32, target_frames=32, patch_size=[8, 8])


def signal(frames=4000, channels=1, peak=0.99):
    t = np.arange(frames) / 16000
    wave = peak * np.sin(2 * np.pi * 440 * t)
    return np.stack([wave, -wave][:channels], axis=1) if channels > 1 else wave


@pytest.mark.parametrize(
    "fmt,subtype",
    [
        ("WAV", "PCM_U8"),
        ("WAV", "PCM_16"),
        ("WAV", "PCM_24"),
        ("WAV", "PCM_32"),
        ("WAV", "FLOAT"),
        ("WAV", "DOUBLE"),
        ("FLAC", "PCM_24"),
        ("OGG", "VORBIS"),
    ],
)
@pytest.mark.parametrize("channels", [1, 2])
def test_every_bit_depth_and_layout_decodes_to_finite_mono_in_range(tmp_path, fmt, subtype, channels):
    path = tmp_path / f"a.{fmt.lower()}"
    sf.write(str(path), signal(channels=channels, peak=0.99 if channels == 1 else 1.0), 16000, format=fmt, subtype=subtype)
    wave, rate = load_audio(path)
    assert rate == 16000 and wave.dtype == torch.float32 and wave.shape == (4000,)
    limit = 1.1 if fmt == "OGG" else 1.0  # a lossy codec decodes to float and may overshoot full scale a little
    assert torch.isfinite(wave).all() and wave.abs().max() <= limit
    if channels == 1 and fmt == "WAV":
        assert wave.abs().max() > 0.95  # scaled to full range, whatever the bit depth
    if channels == 2:
        assert wave.abs().max() < 0.05  # opposite channels average to (almost) silence


@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_float_wav_with_non_finite_samples_is_refused_naming_file_and_frame(tmp_path, subtype, bad):
    data = signal(channels=2)
    data[1234, 1] = bad
    sf.write(str(tmp_path / "bad.wav"), data, 16000, subtype=subtype)
    with pytest.raises(DataError, match=r"bad.wav holds a non-finite sample \(.*\) at frame 1234, channel 1 .*no NaN or Inf"):
        load_audio(tmp_path / "bad.wav")


def test_float_samples_beyond_one_are_kept_up_to_the_documented_peak(tmp_path):
    sf.write(str(tmp_path / "loud.wav"), signal(peak=3.0), 16000, subtype="FLOAT")
    assert abs(load_audio(tmp_path / "loud.wav")[0].abs().max() - 3.0) < 1e-3  # headroom is data, kept as is
    huge = signal(peak=0.5)
    huge[77] = 1e30  # would overflow the power spectrum to inf
    sf.write(str(tmp_path / "huge.wav"), huge, 16000, subtype="DOUBLE")
    with pytest.raises(DataError, match=r"huge.wav holds a sample of 1e\+30 at frame 77, channel 0 .*within ±1000"):
        load_audio(tmp_path / "huge.wav")
    huge[77] = 1e300  # beyond float32 altogether: inf once decoded
    sf.write(str(tmp_path / "huge.wav"), huge, 16000, subtype="DOUBLE")
    with pytest.raises(DataError, match=r"huge.wav holds a non-finite sample \(inf\) at frame 77"):
        load_audio(tmp_path / "huge.wav")


def test_implausible_header_sample_rate_is_refused(tmp_path):
    path = tmp_path / "rate.wav"
    sf.write(str(path), signal(), 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[24:28] = (3).to_bytes(4, "little")  # the fmt chunk's sample rate: 3 Hz
    path.write_bytes(bytes(data))
    with pytest.raises(DataError, match=r"rate.wav declares a sample rate of 3 Hz; accepted: 1000 to 768000 Hz"):
        load_audio(path)


def test_fit_refuses_non_finite_statistics_naming_the_sample():
    class Clips(list):
        files = ("a.wav", "b.wav", "c.wav")

    good = {"fbank": torch.randn(40, 32)}
    bad = {"fbank": torch.randn(40, 32)}
    bad["fbank"][7, 3] = float("nan")
    with pytest.raises(DataError, match=r"training sample 1 \(b.wav\): its log-mel spectrogram is not finite at frame 7"):
        FbankTokenizer(num_mel_bins=32, target_frames=32, patch_size=[8, 8]).fit(Clips([good, bad, good]))
    tok = FbankTokenizer(num_mel_bins=32, target_frames=32, patch_size=[8, 8])
    tok.fit([good, good])
    values = torch.cat([good["fbank"], good["fbank"]]).double()
    assert tok.mean == pytest.approx(float(values.mean())) and tok.std == pytest.approx(float(values.std()))


def test_get_draws_the_crop_from_the_generator(tmp_path):
    sf.write(str(tmp_path / "long.wav"), signal(frames=32000), 16000, subtype="PCM_16")
    ds = AudioFolder(path=str(tmp_path)).build(TOK, "train")
    crop = lambda seed: ds.get(0, torch.Generator().manual_seed(seed))["wave"]
    assert torch.equal(crop(3), crop(3)) and len(crop(3)) == 31 * 160 + 400
    assert len({tuple(crop(s)[:50].tolist()) for s in range(6)}) > 1
    torch.manual_seed(0)
    first = ds[0]["wave"]
    torch.manual_seed(0)
    assert torch.equal(ds[0]["wave"], first)  # __getitem__ is get(i, None): the global RNG
