"""mm-audio: the audio modality for mmcore (AudioMAE on log-mel spectrogram patches).

This module holds only the hook implementations mmcore discovers through the
``mmcore`` entry point; the parts live in their own modules.
"""

from __future__ import annotations

from mmcore.contract import Modality
from mmcore.continuous import PatchEmbedder
from mmcore.continuous import PatchTarget as FbankTarget
from mmcore.continuous import RegressionHead as PatchHead
from mmcore.hookspecs import hookimpl
from mmcore.plugins import recipes_in

from .data import AudioFolder, SpokenDigits, from_record
from .files import read_audio_file
from .masking import FrequencyMasking, RandomMasking, TimeFrequencyMasking, TimeMasking
from .picture import spectrogram_grid
from .tokenizer import FbankTokenizer

__all__ = [
    "AudioFolder",
    "FbankTarget",
    "FbankTokenizer",
    "FrequencyMasking",
    "PatchEmbedder",
    "PatchHead",
    "RandomMasking",
    "SpokenDigits",
    "TimeFrequencyMasking",
    "TimeMasking",
    "read_audio_file",
    "spectrogram_grid",
]


@hookimpl
def register_modalities(register):
    register(
        Modality(
            name="audio",
            tokenizer=FbankTokenizer,
            embedder=PatchEmbedder,
            head=PatchHead,
            default_policy="random",
            default_target="fbank",
            style="mae",
            picture=spectrogram_grid,
            read_file=read_audio_file,
            from_record=from_record,
            description="Audio as Kaldi log-mel patches (AudioMAE): random 80%, time, frequency and time-frequency masking.",
        )
    )


@hookimpl
def register_masking_policies(register):
    register("audio", "random", RandomMasking)
    register("audio", "time", TimeMasking)
    register("audio", "frequency", FrequencyMasking)
    register("audio", "time_frequency", TimeFrequencyMasking)


@hookimpl
def register_targets(register):
    register("audio", "fbank", FbankTarget)


@hookimpl
def register_datasets(register):
    register("audio", "spoken-digits", SpokenDigits)
    register("audio", "folder", AudioFolder)


@hookimpl
def register_recipes(register):
    for name, path in recipes_in(__name__):
        register(name, path)
