"""mm fill on a saved text model: prompts in, filled text out; bad prompts are one-line errors."""

import pytest
import torch

from mmcore.cli import main
from mmcore.model import MaskedModel
from mmcore.testing import tiny_config


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tiny_json):
    torch.manual_seed(0)
    model = MaskedModel(tiny_config("text", "diffusion", tokenizer={"tokenizer_json": tiny_json, "max_length": 32}))
    path = tmp_path_factory.mktemp("text-model")
    model.save_pretrained(path)
    return str(path)


def test_fill_prompts_iterative_and_argmax(folder, capsys, tmp_path):
    assert main(["fill", folder, "The [MASK] sat on the [MASK].", "A dog [MASK] across the garden."]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "[MASK]" not in "".join(lines)
    # visible words stay (a filled piece may be a ##suffix that joins its neighbour when decoded)
    assert lines[0].startswith("the") and " sat on the" in lines[0] and lines[0].endswith(".")
    assert lines[1].startswith("a dog ") and lines[1].endswith("across the garden.")
    assert main(["fill", folder, "The [MASK] sat.", "--argmax"]) == 0
    first = capsys.readouterr().out
    prompts = tmp_path / "p.txt"
    prompts.write_text("The [MASK] sat.\n\n")
    assert main(["fill", folder, "--file", str(prompts), "--steps", "3", "--temperature", "0"]) == 0
    assert capsys.readouterr().out == first  # one-shot argmax = greedy iterative on a single [MASK]


def test_fill_errors_are_one_line(folder, capsys):
    assert main(["fill", folder, "Nothing to fill here."]) == 2
    assert capsys.readouterr().err.strip() == (
        "mm: error: prompt 1: no [MASK] to fill; accepted: a prompt with at least one [MASK] where a token should be predicted"
    )
    assert main(["fill", folder, "cat " * 40 + "[MASK]"]) == 2
    assert "prompt 1 is 41 tokens long; accepted: at most 32 tokens" in capsys.readouterr().err
