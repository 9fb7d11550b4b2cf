"""Predicting one modality of a joint model from the others: the API and ``mm fill --given ... --predict``."""

import numpy as np
import pytest
import torch
from PIL import Image

from mmcore.cli import main
from mmcore.errors import ConfigError
from mmcore.joint import JointModel
from mmcore.joint_fill import predict_stream, read_given
from toy import joint_config

WAVE = ",".join(f"{np.sin(0.6 * i):.3f}" for i in range(12))


@pytest.fixture
def folder(joint_registry, tmp_path):
    torch.manual_seed(0)
    JointModel(joint_config()).save_pretrained(tmp_path / "joint")
    return tmp_path / "joint"


def test_a_discrete_modality_is_decoded_from_the_other_alone(joint_registry):
    torch.manual_seed(0)
    model = JointModel(joint_config()).eval()
    given = read_given(model, [f"signal={WAVE}"])
    ids, tokens = predict_stream(model, given, "word", steps=2, generator=torch.Generator().manual_seed(0))
    assert ids.shape == (1, 2) and ((ids >= 4) & (ids < 16)).all()  # only generable ids, every position filled
    again, _ = predict_stream(model, given, "word", steps=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ids, again)
    argmax, _ = predict_stream(model, given, "word", steps=1, temperature=0.0)
    logits = model(model.collate([{**given, "word": {"ids": [1, 1]}}]), hide_whole="word").outputs["word"].pred
    assert torch.equal(argmax[0], logits[0].argmax(-1))  # one shot at temperature 0 is the argmax


def test_mm_fill_predicts_a_modality_from_the_command_line(folder, capsys):
    assert main(["fill", str(folder), "--given", f"signal={WAVE}", "--predict", "word", "--seed", "1"]) == 0
    printed = capsys.readouterr().out.split()
    assert len(printed) == 2 and all(4 <= int(i) < 16 for i in printed)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--given", "sonar=1", "--predict", "word"], r"--given sonar: not a modality of this model; accepted: signal, word"),
        (["--given", f"signal={WAVE}", "--predict", "signal"], r"--predict signal is also given"),
        (["--given", f"signal={WAVE}", "--predict", "image"], r"--predict image: not a modality of this model"),
        (["--given", "signal", "--predict", "word"], r"expected MODALITY=FILE or MODALITY=TEXT"),
        (["--given", f"signal={WAVE}"], r"give --given MODALITY=VALUE ... --predict MODALITY"),
    ],
)
def test_mm_fill_errors_name_the_modality(folder, capsys, argv, message):
    assert main(["fill", str(folder), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mm: error:") and len(err.strip().splitlines()) == 1
    import re

    assert re.search(message, err), err


def image_word_model(tmp_path):
    config = {
        "modalities": {
            "image": {
                "tokenizer": {"image_size": [8, 8], "patch_size": 4, "channels": 1},
                "masking": {"name": "random", "ratio": 0.5},
                "target": {"name": "pixels", "norm_pix": False},
            },
            "word": {"masking": {"name": "bert", "ratio": 0.5}, "target": {"name": "ids"}},
        },
        "style": "mae",
        "encoder": {"dim": 32, "depth": 1, "heads": 2},
        "decoder": {"dim": 16, "depth": 1, "heads": 2},
    }
    torch.manual_seed(0)
    JointModel(config).save_pretrained(tmp_path / "iw")
    return tmp_path / "iw"


def test_an_image_is_predicted_from_a_word_and_written_as_a_picture(joint_registry, tmp_path, capsys):
    folder = image_word_model(tmp_path)
    out = tmp_path / "seven.png"
    assert main(["fill", str(folder), "--given", "word=2", "--predict", "image", "-o", str(out)]) == 0
    assert Image.open(out).size[0] > 0
    Image.fromarray((np.random.default_rng(0).random((8, 8)) * 255).astype(np.uint8)).save(tmp_path / "digit.png")
    assert main(["fill", str(folder), "--given", f"image={tmp_path / 'digit.png'}", "--predict", "word"]) == 0
    assert len(capsys.readouterr().out.split()) == 2 + 1  # the picture path, then the word's two ids


def test_a_given_file_of_the_wrong_modality_is_named(joint_registry, tmp_path, capsys):
    folder = image_word_model(tmp_path)
    wav = tmp_path / "seven.wav"
    wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt ")  # not an image
    assert main(["fill", str(folder), "--given", f"image={wav}", "--predict", "word"]) == 2
    err = capsys.readouterr().err
    assert "--given image=" in err and "not a file the 'image' modality reads" in err


def test_predicting_needs_a_given_modality(joint_registry):
    model = JointModel(joint_config())
    with pytest.raises(ConfigError, match="nothing given"):
        predict_stream(model, {}, "word")
