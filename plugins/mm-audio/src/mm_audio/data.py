"""Datasets: the spoken-digits demo (synthesised locally) and a folder of wav/flac/ogg files."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mmcore.contract import check_split
from mmcore.errors import ConfigError, DataError
from mmcore.folders import keep_readable, list_class_folder, read_or_next
from mmcore.records import Encoded, as_bytes, as_int
from mmcore.records import field as record_field
from mmcore.splits import check_test_fraction, split_indices

from .demo import RATE, load_or_generate
from .files import ACCEPTED, RATES, check_samples, conform_rate, load_audio, probe_audio, read_audio, resample

ON_ERROR = ("raise", "skip")


def random_crop(wave: torch.Tensor, tokenizer, generator: torch.Generator | None = None) -> torch.Tensor:
    """A random window of the crop's length (in samples) from a clip longer than it, drawn from
    ``generator`` (None: torch's global one)."""
    length = int(
        round(
            (tokenizer.target_frames - 1) * tokenizer.frame_shift_ms / 1000 * tokenizer.sample_rate
            + tokenizer.frame_length_ms / 1000 * tokenizer.sample_rate
        )
    )
    if len(wave) <= length:
        return wave
    start = int(torch.randint(len(wave) - length + 1, (), generator=generator))
    return wave[start : start + length]


def check_window(wave: torch.Tensor, tokenizer, path) -> None:
    """At least one analysis window of samples, or a DataError naming ``path``."""
    window = int(tokenizer.sample_rate * tokenizer.frame_length_ms / 1000)
    if len(wave) < window:
        raise DataError(
            f"audio {path} has {len(wave)} samples at {tokenizer.sample_rate} Hz, shorter than one "
            f"{tokenizer.frame_length_ms:g} ms analysis window; accepted: at least {window} samples"
        )


class _Clips(Dataset):
    """Demo clips; each clip's log-mel is computed once per process and kept (float16), since
    the filterbank costs more than a tiny model's step on it."""

    def __init__(self, audio: np.ndarray, offsets: np.ndarray, labels: np.ndarray, chosen: list[int], tokenizer) -> None:
        self.audio, self.offsets, self.labels, self.chosen, self.tokenizer = audio, offsets, labels, chosen, tokenizer
        self.cache: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.chosen)

    def wave(self, i: int) -> torch.Tensor:
        k = self.chosen[i]
        wave = torch.from_numpy(self.audio[self.offsets[k] : self.offsets[k + 1]].astype(np.float32) / 32768.0)
        return resample(wave, RATE, self.tokenizer.sample_rate)

    def __getitem__(self, i: int) -> dict:
        if i not in self.cache:
            self.cache[i] = self.tokenizer.features(self.wave(i)).to(torch.float16)
        return {"fbank": self.cache[i].to(torch.float32), "label": int(self.labels[self.chosen[i]])}


@dataclass
class SpokenDigits:
    """Spoken English digits from espeak-ng over ~350 voices, speeds, pitches and noise levels.

    ``num_clips`` clips (label = index mod 10) are generated on first use into
    ``cache_dir`` (default $MM_AUDIO_CACHE or ~/.cache/mm-audio, ~10 ms each);
    ``test_fraction`` of them, chosen by a fixed-seed permutation, are the test split.
    """

    num_clips: int = 3000
    test_fraction: float = 0.2
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if self.num_clips < 10:
            raise ConfigError(f"data.dataset.num_clips {self.num_clips!r} is too small; accepted: at least 10 (one per digit)")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"data.dataset.test_fraction {self.test_fraction!r} is out of range; accepted: 0 < test_fraction < 1")

    def build(self, tokenizer, split: str) -> Dataset:
        check_split(split)
        data = load_or_generate(self.num_clips, self.cache_dir)
        chosen = split_indices(self.num_clips, self.test_fraction, split)
        return _Clips(data["audio"], data["offsets"], data["labels"], chosen, tokenizer)


class _Files(Dataset):
    """Lazy: files are decoded in ``__getitem__``, so DataLoader workers share the work."""

    def __init__(self, files: list[Path], labels: list[int], classes: list[str], tokenizer, options: AudioFolder, train: bool) -> None:
        self.files, self.labels, self.classes, self.tokenizer = files, labels, classes, tokenizer
        self.resample, self.on_error, self.crop = options.resample, options.on_error, options.random_crop and train
        self.skipped: list[str] = []  # files skipped in this process (on_error=skip)

    def __len__(self) -> int:
        return len(self.files)

    def load(self, i: int, generator: torch.Generator | None = None) -> dict:
        wave = read_audio(self.files[i], self.tokenizer.sample_rate, self.resample, hint="set data.dataset.resample=true to resample")
        if self.crop:
            wave = random_crop(wave, self.tokenizer, generator)
        check_window(wave, self.tokenizer, self.files[i])
        return {"wave": wave, "label": self.labels[i]}

    def __getitem__(self, i: int) -> dict:
        return self.get(i, None)

    def get(self, index: int, generator: torch.Generator | None) -> dict:
        """Item ``index`` with every random choice (the crop) drawn from ``generator``, so a run resumed
        with the same generator per (seed, epoch, index) sees the same crops; None: the global RNG."""
        return read_or_next(self.files, index, lambda j: self.load(j, generator), self.on_error, self.skipped, "audio", ACCEPTED)


@dataclass
class AudioFolder:
    """Audio files under ``path``, searched recursively; first-level subfolders are classes.

    Files directly in ``path`` get label -1. Clips at another sample rate are
    resampled (``resample``) or rejected; training clips longer than the crop
    are cropped at random (``random_crop``). ``on_error``: ``raise`` stops at
    the first unreadable file with its name; ``skip`` drops files whose header
    is unreadable when the dataset is built and, during training, replaces a
    file that fails to decode by the next one, warning with its name and the
    running count.
    """

    path: str = "???"
    extensions: list[str] = field(default_factory=lambda: ["wav", "flac", "ogg"])
    resample: bool = True
    random_crop: bool = True
    test_fraction: float = 0.0
    on_error: str = "raise"

    def __post_init__(self) -> None:
        check_test_fraction(self.test_fraction)
        if self.on_error not in ON_ERROR:
            raise ConfigError(f"data.dataset.on_error {self.on_error!r} is unknown; accepted: {', '.join(ON_ERROR)}")

    def build(self, tokenizer, split: str) -> Dataset:
        check_split(split)
        files, labels, classes = list_class_folder(self.path, self.extensions, "audio", "./clips")
        if self.on_error == "skip":
            files, labels = keep_readable(files, labels, probe_audio, "audio", self.path, ACCEPTED)
        chosen = split_indices(len(files), self.test_fraction, split)
        return _Files([files[i] for i in chosen], [labels[i] for i in chosen], classes, tokenizer, self, split == "train")


AUDIO_FIELDS = ("audio", "wav", "flac", "ogg", "mp3")
LABEL_FIELDS = ("label", "cls")


def _decoded(value: Mapping, name: str) -> tuple[torch.Tensor, int]:
    """A datasets Audio value already decoded, ``{"array": [T] or [C, T], "sampling_rate": Hz}``: mono float32 [T], rate."""
    try:
        data = np.asarray(value["array"], dtype=np.float32)
        rate = as_int(value["sampling_rate"], f"{name}.sampling_rate")
    except (TypeError, ValueError, KeyError) as exc:  # a ragged or non-numeric array, or no sampling_rate
        raise DataError(
            f"field {name!r} holds an audio array that cannot be read ({' '.join(str(exc).split())}); "
            "accepted: {'array': [samples] or [channels, samples], 'sampling_rate': Hz}"
        ) from None
    if data.ndim not in (1, 2) or data.size == 0:
        raise DataError(
            f"field {name!r} holds an audio array of shape {list(data.shape)}; accepted: [samples] or "
            "[channels, samples] with at least one sample"
        )
    if not RATES[0] <= rate <= RATES[1]:
        raise DataError(f"field {name!r} has a sampling_rate of {rate} Hz; accepted: {RATES[0]} to {RATES[1]} Hz")
    frames = data[:, None] if data.ndim == 1 else data.T  # [T, C], as the file reader checks it
    check_samples(f"field {name!r}", frames, "array")
    return torch.from_numpy(np.ascontiguousarray(frames.mean(axis=1))), rate


def from_record(tokenizer, record, generator: torch.Generator | None = None) -> dict:
    """A streamed record as the folder's sample ``{"wave": [T], "label": int}`` (`Modality.from_record`).

    Reads the first of ``audio``, ``wav``, ``flac``, ``ogg``, ``mp3``: encoded bytes (or datasets'
    ``{"bytes", "path"}``), decoded by the folder's reader, or a datasets Audio value already decoded
    (``{"array", "sampling_rate"}``); the optional label from ``label`` or ``cls`` (-1 without one).
    Channels are averaged, the rate resampled to the tokenizer's, and a clip longer than the crop is
    cropped at a random window drawn from ``generator``, as the folder's training split does.
    """
    name, value = record_field(record, AUDIO_FIELDS)
    if isinstance(value, Mapping) and value.get("array") is not None:
        wave, rate = _decoded(value, name)
    else:
        wave, rate = load_audio(Encoded(as_bytes(value, name), name))
    where = f"field {name!r}"
    wave = random_crop(conform_rate(wave, rate, where, tokenizer.sample_rate, True, hint=""), tokenizer, generator)
    check_window(wave, tokenizer, where)
    label_name, label = record_field(record, LABEL_FIELDS, required=False)
    return {"wave": wave, "label": -1 if label_name is None else as_int(label, label_name)}
