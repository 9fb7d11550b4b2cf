"""The shared infilling sampler (mmcore.sampling) on a stub model whose confidences are known."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from mmcore.errors import ConfigError, DataError
from mmcore.sampling import check_prompts, fill, remaining_after, sample_categorical
from toy import sampler_stub

MASK, V = 9, 10


class PositionLogits(nn.Module):
    """Predicts id (position % 5) + 1 at every position, more confidently further right."""

    def forward(self, states):
        pos = states[..., 0]
        logits = torch.full((*pos.shape, V), -10.0)
        return logits.scatter(-1, (pos.long() % 5 + 1)[..., None], (pos * 0.5)[..., None])


def stub_model(calls):
    return sampler_stub(calls, PositionLogits(), mask_id=MASK, vocab_size=V)


def test_schedule_is_cosine():
    assert remaining_after(0, 4, torch.tensor([10])).item() == math.floor(10 * math.cos(math.pi / 8))
    assert [remaining_after(s, 4, torch.tensor([10])).item() for s in range(4)] == [9, 7, 3, 0]


def test_fill_commits_most_confident_first_and_keeps_visible_ids():
    calls = []
    ids = torch.tensor([[7, MASK, MASK, 3, MASK, MASK], [MASK, 2, 2, 2, 2, 0]])
    valid = torch.tensor([[True] * 6, [True] * 5 + [False]])
    out, filled = fill(stub_model(calls), {"ids": ids, "valid": valid}, steps=4, temperature=0.0)
    assert out.tolist() == [[7, 2, 3, 3, 5, 1], [1, 2, 2, 2, 2, 0]]
    assert torch.equal(filled, (ids == MASK) & valid)
    hidden_rows = [c[0].nonzero().flatten().tolist() for c in calls]
    assert hidden_rows[0] == [1, 2, 4, 5] and hidden_rows[1] == [1, 2, 4]  # position 5 (most confident) went first
    one_shot = []
    out1, _ = fill(stub_model(one_shot), {"ids": ids, "valid": valid}, steps=1, temperature=0.0)
    assert len(one_shot) == 1 and torch.equal(out1, out)


def test_float64_sampling_matches_the_distribution():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0]).expand(40000, -1)
    for temperature in (1.0, 0.5):
        ids, conf = sample_categorical(logits, temperature, torch.Generator().manual_seed(0))
        expected = torch.softmax(logits[0].double() / temperature, 0)
        assert conf.dtype == torch.float64
        assert torch.allclose(torch.bincount(ids, minlength=4).double() / ids.numel(), expected, atol=0.01)
    assert (sample_categorical(logits[:3], 0.0)[0] == 0).all()


def test_errors():
    with pytest.raises(DataError, match=r"prompt 2: no \[MASK\] to fill; accepted: a prompt with at least one \[MASK\]"):
        check_prompts(torch.tensor([[1, MASK], [1, 2]]), None, MASK, ["prompt 1", "prompt 2"], "[MASK]")
    with pytest.raises(ConfigError, match="steps 0"):
        fill(stub_model([]), {"ids": torch.tensor([[MASK]])}, steps=0)
    with pytest.raises(ConfigError, match="BERT-style"):
        fill(SimpleNamespace(**{**vars(stub_model([])), "style": "mae"}), {"ids": torch.tensor([[MASK]])})
