"""The spoken-digits demo: English digits synthesised locally with espeak-ng, no download.

Each clip is one word ("zero" … "nine") spoken by one of many voices (accent ×
voice variant), at a random speed and pitch, with white noise at a random SNR,
so a model has to hear the word rather than the voice. Clips are generated
once, deterministically from their index, and cached as one .npz file; later
runs (and every loader worker) read the cache.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from mmcore.errors import DataError

from .files import resample

VERSION = 1  # bump when generation changes, so stale caches are not reused
RATE = 16000
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd"]
VARIANTS = [
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "croak",
    "klatt",
    "klatt2",
    "klatt3",
    "Alex",
    "Andy",
    "Annie",
    "Denis",
    "Gene",
    "Jacky",
    "Lee",
    "Mario",
    "Michael",
    "Storm",
    "adam",
    "anika",
    "aunty",
    "belinda",
    "benjamin",
    "boris",
    "caleb",
    "david",
    "ed",
    "edward",
    "grandma",
    "grandpa",
    "john",
    "linda",
    "max",
    "norbert",
    "paul",
    "pedro",
    "quincy",
    "rob",
    "robert",
    "steph",
    "travis",
    "zac",
]


def default_cache_dir() -> Path:
    """$MM_AUDIO_CACHE, else $XDG_CACHE_HOME/mm-audio, else ~/.cache/mm-audio."""
    if os.environ.get("MM_AUDIO_CACHE"):
        return Path(os.environ["MM_AUDIO_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mm-audio"


def clip_settings(index: int) -> dict:
    """The word, voice, speed, pitch and noise of clip ``index``: a pure function of the index."""
    rng = np.random.default_rng([VERSION, index])
    return {
        "label": index % 10,
        "voice": f"{ACCENTS[rng.integers(len(ACCENTS))]}+{VARIANTS[rng.integers(len(VARIANTS))]}",
        "speed": int(rng.integers(110, 231)),
        "pitch": int(rng.integers(10, 91)),
        "snr_db": float(rng.uniform(15, 40)),
        "noise_seed": int(rng.integers(2**31)),
    }


def synthesise(index: int, espeak: str) -> np.ndarray:
    """One clip as int16 at 16 kHz, leading and trailing silence trimmed to 50 ms."""
    s = clip_settings(index)
    cmd = [espeak, "-v", s["voice"], "-s", str(s["speed"]), "-p", str(s["pitch"]), "--stdout", WORDS[s["label"]]]
    out = subprocess.run(cmd, capture_output=True, check=False, timeout=60)
    if out.returncode != 0 or not out.stdout:
        raise DataError(f"espeak-ng failed on {' '.join(cmd)}: {out.stderr.decode(errors='replace').strip()}")
    wave, rate = sf.read(io.BytesIO(out.stdout), dtype="float32")
    wave = resample(torch.from_numpy(wave), rate, RATE).numpy()
    loud = np.flatnonzero(np.abs(wave) > 0.01 * np.abs(wave).max())
    margin = RATE // 20
    wave = wave[max(0, loud[0] - margin) : loud[-1] + margin] if len(loud) else wave
    power = float(np.mean(wave**2)) + 1e-12
    noise = np.random.default_rng(s["noise_seed"]).standard_normal(len(wave)).astype(np.float32)
    wave = wave + noise * np.sqrt(power / 10 ** (s["snr_db"] / 10))
    wave = wave / max(1e-6, float(np.abs(wave).max())) * 0.9
    return (wave * 32767).round().astype(np.int16)


def generate(num_clips: int, path: Path) -> None:
    """Synthesise every clip (a few espeak-ng processes at once) and write the cache atomically."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise DataError(
            "the spoken-digits demo is synthesised with espeak-ng, which is not installed; "
            "accepted: install it (Debian/Ubuntu: apt-get install espeak-ng), or train on clips of "
            "yours: mm train audio-mae-folder data.dataset.path=./clips"
        )
    with ThreadPoolExecutor(max_workers=4) as pool:
        waves = list(pool.map(lambda i: synthesise(i, espeak), range(num_clips)))
    offsets = np.cumsum([0] + [len(w) for w in waves])
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", suffix=".npz", dir=path.parent)
    os.close(fd)
    try:
        np.savez(tmp, audio=np.concatenate(waves), offsets=offsets, labels=np.arange(num_clips) % 10, rate=RATE)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def load_or_generate(num_clips: int, cache_dir: str | Path | None) -> dict[str, np.ndarray]:
    """The cached clips, generated first if this cache has none."""
    path = Path(cache_dir or default_cache_dir()) / f"spoken-digits-v{VERSION}-{num_clips}.npz"
    if not path.exists():
        generate(num_clips, path)
    try:
        with np.load(path) as data:
            return {k: data[k] for k in data.files}
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"the spoken-digits cache {path} is damaged ({exc}); accepted: delete it to regenerate") from None
