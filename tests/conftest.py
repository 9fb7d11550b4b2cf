import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))

from mmcore import plugins  # noqa: E402


@pytest.fixture
def toy_registry():
    """The process registry with entry points loaded plus the toy modality."""
    from toy import ToyPlugin

    plugins.reset_registry()
    registry = plugins.get_registry()
    registry.add_plugin(ToyPlugin(), "toy")
    yield registry
    plugins.reset_registry()


@pytest.fixture
def joint_registry(toy_registry):
    """``toy_registry`` plus the discrete toy modality "word", for joint (multimodal) models."""
    from toy import WordPlugin

    toy_registry.add_plugin(WordPlugin(), "word")
    return toy_registry
