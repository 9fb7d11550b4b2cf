"""Fuzzing the audio reader with truncated and corrupted real files (WAV 16-bit, FLAC, OGG).

Property: the reader returns a sane, finite waveform (and a finite spectrogram), or raises a
DataError naming the file; any other exception, or non-finite output, fails. MM_FUZZ_EXAMPLES
sets the cases per format (60 by default; a benchmark run uses 1000).
"""

import io

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given
from mm_audio import FbankTokenizer
from mm_audio.files import MAX_FLOAT_PEAK, read_audio
from mmcore.errors import DataError
from mmcore.testing import corrupted, fuzz_settings

TOK = FbankTokenizer(sample_rate=16000, num_mel_bins=32, target_frames=32, patch_size=[8, 8])


def real_file(fmt: str, subtype: str) -> bytes:
    """Half a second of tone and noise, encoded by libsndfile."""
    t = np.arange(8000) / 16000
    wave = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.05 * np.random.default_rng(0).standard_normal(len(t))
    out = io.BytesIO()
    sf.write(out, wave.astype(np.float32), 16000, format=fmt, subtype=subtype)
    return out.getvalue()


def check(path) -> None:
    try:
        wave = read_audio(path, 16000, True, hint="")
    except DataError as exc:
        assert str(path) in str(exc), exc
        return
    assert wave.ndim == 1 and wave.numel() > 0 and wave.dtype == torch.float32
    assert torch.isfinite(wave).all() and float(wave.abs().max()) <= MAX_FLOAT_PEAK * 1.01  # resampling may ring a little
    if wave.numel() >= 400:
        assert torch.isfinite(TOK.features(wave)).all()


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS")])
def test_corrupted_audio_is_read_or_refused_by_name(tmp_path_factory, fmt, subtype):
    original = real_file(fmt, subtype)
    path = tmp_path_factory.mktemp("fuzz") / f"clip.{fmt.lower()}"

    @fuzz_settings()
    @given(corrupted(original))
    def run(data):
        path.write_bytes(data)
        check(path)

    run()
