"""Kaldi-compatible log-mel filterbanks (torchaudio.compliance.kaldi), as AudioMAE computes them."""

from __future__ import annotations

import torch
from torch import Tensor

from mmcore.errors import DataError


def fbank(wave: Tensor, sample_rate: int, num_mel_bins: int, frame_shift_ms: float, frame_length_ms: float) -> Tensor:
    """Mono [T] waveform → [frames, num_mel_bins] log-mel energies (Hanning window, no dither,
    mean removal per frame off: the settings of AudioMAE/AST, so their statistics carry over)."""
    import torchaudio.compliance.kaldi as kaldi

    window = int(sample_rate * frame_length_ms / 1000)
    if wave.numel() < window:
        raise DataError(
            f"audio of {wave.numel()} samples is shorter than one {frame_length_ms:g} ms analysis window "
            f"({window} samples at {sample_rate} Hz); accepted: at least {window} samples"
        )
    wave = wave.to(torch.float32).reshape(1, -1)
    wave = wave - wave.mean()  # AudioMAE removes the DC offset before the filterbank
    return kaldi.fbank(
        wave,
        htk_compat=True,
        sample_frequency=sample_rate,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=num_mel_bins,
        dither=0.0,
        frame_shift=frame_shift_ms,
        frame_length=frame_length_ms,
    )
