import numpy as np
import pytest
import soundfile as sf


@pytest.fixture
def write_audio():
    """Write a real audio file: a tone plus a little noise, ``seconds`` long."""

    def write(path, seconds=0.5, rate=16000, fmt=None, channels=1, freq=440.0):
        path.parent.mkdir(parents=True, exist_ok=True)
        t = np.arange(int(seconds * rate)) / rate
        wave = 0.5 * np.sin(2 * np.pi * freq * t) + 0.01 * np.random.default_rng(0).standard_normal(len(t))
        data = np.stack([wave] * channels, axis=1) if channels > 1 else wave
        sf.write(str(path), data.astype(np.float32), rate, format=fmt)
        return path

    return write
