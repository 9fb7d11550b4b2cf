"""Reading audio files with soundfile (libsndfile): decode, mono, resample.

Shared by `AudioFolder` (in data-loader workers) and `read_audio_file`
(``mm reconstruct``); every error names the file, what was found and what is
accepted.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import Tensor

from mmcore.errors import DataError

ACCEPTED = "WAV, FLAC or OGG (Vorbis/Opus) audio readable by libsndfile"
# libsndfile reports a WAV whose data chunk is cut short as "data : 32000 (should be 15978)"
_SHORT_CHUNK = re.compile(r"^data : (\d+) \(should be (\d+)\)", re.MULTILINE)
_STREAMED = (0, 0xFFFFFFFF)  # sizes written by encoders that did not know the length in advance


def _check_not_truncated(path: str | Path, info) -> None:
    """WAV readers silently return the samples present; a cut-off file is an error here."""
    found = _SHORT_CHUNK.search(info.extra_info or "")
    if found:
        declared, present = int(found.group(1)), int(found.group(2))
        if declared not in _STREAMED and present < declared:
            raise DataError(f"audio {path} is truncated: its header declares {declared} data bytes but only {present} "
                            f"are present; accepted: complete {ACCEPTED}")


def probe_audio(path: str | Path):
    """Header only: (soundfile info) or a DataError naming the file. Cheap enough to run on every file."""
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError, OSError) as exc:
        raise DataError(f"cannot decode audio {path}: {exc}; accepted: {ACCEPTED}") from None
    _check_not_truncated(path, info)
    if info.frames == 0:
        raise DataError(f"audio {path} has no samples (zero length); accepted: {ACCEPTED} with at least one sample")
    return info


def load_audio(path: str | Path) -> tuple[Tensor, int]:
    """Decode ``path`` fully: (mono float32 [T] in [-1, 1], sample rate). Channels are averaged."""
    probe_audio(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)  # [T, C]
    except (sf.SoundFileError, RuntimeError, OSError) as exc:
        raise DataError(f"cannot decode audio {path}: {exc}; accepted: {ACCEPTED}") from None
    if data.shape[0] == 0:
        raise DataError(f"audio {path} has no samples (zero length); accepted: {ACCEPTED} with at least one sample")
    return torch.from_numpy(np.ascontiguousarray(data.mean(axis=1))), int(rate)


def resample(wave: Tensor, rate: int, target: int) -> Tensor:
    """Band-limited (sinc) resampling with torchaudio; a no-op at the same rate."""
    if rate == target:
        return wave
    import torchaudio.functional as AF

    return AF.resample(wave, rate, target)


def read_audio(path: str | Path, sample_rate: int, convert_rate: bool, hint: str) -> Tensor:
    """Mono float32 [T] at ``sample_rate``; a different rate is resampled only if ``convert_rate``."""
    wave, rate = load_audio(path)
    if rate != sample_rate and not convert_rate:
        raise DataError(f"audio {path} has sample rate {rate} Hz but the recipe expects {sample_rate} Hz "
                        f"(model.tokenizer.sample_rate); {hint}")
    return resample(wave, rate, sample_rate)


def read_audio_file(tokenizer, path: str | Path) -> dict:
    """One user file, resampled to the tokenizer's rate, as a sample for ``collate`` (``mm reconstruct``)."""
    return {"wave": read_audio(path, tokenizer.sample_rate, True, hint=""), "label": -1}
