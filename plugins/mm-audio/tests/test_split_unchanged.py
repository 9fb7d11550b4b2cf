"""SpokenDigits' and AudioFolder's train/test splits are the ones drawn inline before mmcore.splits
(a numpy permutation, seed 0)."""

from types import SimpleNamespace

import numpy as np
import pytest

import mm_audio.data
from mm_audio import AudioFolder, SpokenDigits


def old_split(count, fraction, split):  # mm_audio/data.py _split, before mmcore.splits
    order = np.random.default_rng(0).permutation(count)
    num_test = int(round(fraction * count))
    return sorted((order[:num_test] if split == "test" else order[num_test:]).tolist())


def test_spoken_digits_split_is_unchanged(monkeypatch):
    monkeypatch.setattr(mm_audio.data, "load_or_generate", lambda count, cache: {"audio": None, "offsets": None, "labels": None})
    for dataset in (SpokenDigits(), SpokenDigits(num_clips=500, test_fraction=0.1)):  # the recipe's 3000 clips, and another
        for split in ("train", "test"):
            assert dataset.build(None, split).chosen == old_split(dataset.num_clips, dataset.test_fraction, split)


@pytest.mark.parametrize("count, fraction", [(7, 0.3), (40, 0.25)])
def test_audio_folder_split_is_unchanged(tmp_path, count, fraction):
    for i in range(count):  # listing and splitting decode nothing: empty files will do
        (tmp_path / f"{i:03}.wav").touch()
    files = sorted(tmp_path.glob("*.wav"))
    for split in ("train", "test"):
        built = AudioFolder(path=str(tmp_path), test_fraction=fraction).build(SimpleNamespace(), split)
        assert built.files == [files[i] for i in old_split(count, fraction, split)]
