"""Reading audio files with soundfile (libsndfile): decode, mono, resample.

Shared by `AudioFolder` (in data-loader workers) and `read_audio_file`
(``mm reconstruct``); every error names the file, what was found and what is
accepted. What is decoded is checked, so a bad file never reaches ``fit`` or a
model: the header's sample rate and channel count must be plausible, a WAV's
declared data size and a file's declared frame count must be present, and every
sample must be finite. Integer formats (8/16/24/32-bit) decode to [-1, 1);
float formats may exceed ±1 (headroom) and are kept as they are up to
±`MAX_FLOAT_PEAK`, beyond which the file is refused (a mis-scaled or damaged
file; its power spectrum would overflow float32 further on).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from mmcore.folders import refusal
from mmcore.errors import DataError
from mmcore.records import Encoded

ACCEPTED = "WAV, FLAC or OGG (Vorbis/Opus) audio readable by libsndfile"
# libsndfile reports a WAV whose data chunk is cut short as "data : 32000 (should be 15978)"
_SHORT_CHUNK = re.compile(r"^data : (\d+) \(should be (\d+)\)", re.MULTILINE)
_STREAMED = (0, 0xFFFFFFFF)  # sizes written by encoders that did not know the length in advance
RATES = (1000, 768_000)  # plausible sample rates in Hz; a damaged header outside them would make resampling explode
MAX_CHANNELS = 256
MAX_FLOAT_PEAK = 1000.0  # float samples beyond this (60 dB over full scale) are refused
MAX_RATIO = 1_000_000  # reduced rate ratio p*q: 44100 Hz to 16 kHz is 441*160; 44101 Hz is 7e8 (gigabytes of filter)
BLOCK = 1 << 20  # samples decoded at a time: memory follows the data present, not a header's claim
_ERRORS = (sf.SoundFileError, RuntimeError, OSError, ValueError, TypeError, MemoryError)


def _source(path: str | Path | Encoded):
    """What soundfile opens: the path as text, or a fresh in-memory file."""
    return path.open() if isinstance(path, Encoded) else str(path)


def _check_not_truncated(path: str | Path, info) -> None:
    """WAV readers silently return the samples present; a cut-off file is an error here."""
    found = _SHORT_CHUNK.search(info.extra_info or "")
    if found:
        declared, present = int(found.group(1)), int(found.group(2))
        if declared not in _STREAMED and present < declared:
            raise refusal(
                f"audio {path} is truncated: its header declares {declared} data bytes but only {present} "
                f"are present; accepted: complete {ACCEPTED}",
                "truncated",
            )


def probe_audio(path: str | Path | Encoded):
    """Header only: (soundfile info) or a DataError naming the file. Cheap enough to run on every file."""
    try:
        info = sf.info(_source(path))
    except _ERRORS as exc:
        raise DataError(f"cannot decode audio {path}: {_one_line(exc)}; accepted: {ACCEPTED}") from None
    _check_not_truncated(path, info)
    if info.frames == 0:
        raise refusal(f"audio {path} has no samples (zero length); accepted: {ACCEPTED} with at least one sample", "empty")
    if not RATES[0] <= info.samplerate <= RATES[1]:
        raise refusal(
            f"audio {path} declares a sample rate of {info.samplerate} Hz; accepted: {RATES[0]} to {RATES[1]} Hz", "implausible header"
        )
    if not 1 <= info.channels <= MAX_CHANNELS:
        raise refusal(f"audio {path} declares {info.channels} channels; accepted: 1 to {MAX_CHANNELS}", "implausible header")
    return info


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _decode(path: str | Path, info) -> np.ndarray:
    """All frames as float32 [T, C], read block by block until the data ends."""
    blocks = []
    with sf.SoundFile(_source(path)) as f:
        while True:
            block = f.read(max(1, BLOCK // info.channels), dtype="float32", always_2d=True)
            if not len(block):
                break
            blocks.append(block)
    return np.concatenate(blocks) if blocks else np.zeros((0, info.channels), np.float32)


def check_samples(path: str | Path, data: np.ndarray, subtype: str) -> None:
    """Every decoded sample finite, and float data within ±`MAX_FLOAT_PEAK`; errors name the first bad frame."""
    finite = np.isfinite(data)
    if not finite.all():
        frame, channel = np.argwhere(~finite)[0]
        raise refusal(
            f"audio {path} holds a non-finite sample ({data[frame, channel]}) at frame {frame}, channel {channel} "
            f"({subtype}); accepted: finite samples (no NaN or Inf)",
            "non-finite samples",
        )
    peak = np.abs(data).max(initial=0.0)
    if peak > MAX_FLOAT_PEAK:
        frame, channel = np.argwhere(np.abs(data) == peak)[0]
        raise refusal(
            f"audio {path} holds a sample of {data[frame, channel]:.4g} at frame {frame}, channel {channel} "
            f"({subtype}); accepted: samples within ±{MAX_FLOAT_PEAK:g} (full scale is ±1)",
            "samples out of range",
        )


def load_audio(path: str | Path | Encoded) -> tuple[Tensor, int]:
    """Decode ``path`` (a file, or `Encoded` bytes) fully: (mono float32 [T], sample rate); channels are averaged.
    Integer formats give [-1, 1); float formats their own values (see the module's note)."""
    info = probe_audio(path)
    try:
        data = _decode(path, info)  # [T, C]
    except _ERRORS as exc:
        raise DataError(f"cannot decode audio {path}: {_one_line(exc)}; accepted: {ACCEPTED}") from None
    if data.shape[0] == 0:
        raise refusal(f"audio {path} has no samples (zero length); accepted: {ACCEPTED} with at least one sample", "empty")
    if data.shape[0] < info.frames and info.format != "OGG":  # Ogg's frame count is an estimate from the last page
        raise refusal(
            f"audio {path} is truncated: its header declares {info.frames} frames but only {data.shape[0]} "
            f"decode; accepted: complete {ACCEPTED}",
            "truncated",
        )
    check_samples(path, data, info.subtype)
    return torch.from_numpy(np.ascontiguousarray(data.mean(axis=1))), int(info.samplerate)


def resample(wave: Tensor, rate: int, target: int) -> Tensor:
    """Band-limited (sinc) resampling with torchaudio; a no-op at the same rate."""
    if rate == target:
        return wave
    import torchaudio.functional as AF

    return AF.resample(wave, rate, target)


def read_audio(path: str | Path, sample_rate: int, convert_rate: bool, hint: str) -> Tensor:
    """Mono float32 [T] at ``sample_rate``; a different rate is resampled only if ``convert_rate``."""
    wave, rate = load_audio(path)
    return conform_rate(wave, rate, path, sample_rate, convert_rate, hint)


def conform_rate(wave: Tensor, rate: int, path, sample_rate: int, convert_rate: bool, hint: str) -> Tensor:
    """``wave`` at ``rate`` Hz brought to ``sample_rate`` (resampled only if ``convert_rate``); errors name ``path``."""
    if rate != sample_rate and not convert_rate:
        raise DataError(
            f"audio {path} has sample rate {rate} Hz but the recipe expects {sample_rate} Hz (model.tokenizer.sample_rate); {hint}"
        )
    g = math.gcd(rate, sample_rate)
    if (rate // g) * (sample_rate // g) > MAX_RATIO:  # the sinc filter bank grows with both terms of the ratio
        raise DataError(
            f"audio {path} has sample rate {rate} Hz, whose ratio to {sample_rate} Hz ({rate // g}/{sample_rate // g}) "
            "needs too large a resampling filter (a damaged header?); accepted: rates with a simpler ratio, "
            "e.g. 8000, 11025, 22050, 32000, 44100, 48000 Hz (convert it: sox in.wav -r 16000 out.wav)"
        )
    return resample(wave, rate, sample_rate)


def read_audio_file(tokenizer, path: str | Path) -> dict:
    """One user file, resampled to the tokenizer's rate, as a sample for ``collate`` (``mm reconstruct``)."""
    return {"wave": read_audio(path, tokenizer.sample_rate, True, hint=""), "label": -1}
