"""Masked diffusion done right: the first-hitting and token-by-token samplers, float32 against float64
Gumbel noise, per-sample mask ratios and their ELBO weights, and mm fill --sampler first-hitting."""

import math

import pytest
import torch
from torch import nn

from mmcore.discrete import DiffusionMasking, budget_of_valid, hide_whole_units
from mmcore.errors import ConfigError
from mmcore.sampling import (
    fill_first_hitting,
    fill_token_by_token,
    first_hitting_times,
    gumbel_noise,
    sample_categorical,
)
from mmcore.contract import Tokens
from toy import sampler_stub

MASK, V = 9, 10
FLOAT32_CAP = -math.log(-math.log(1 - 2**-24))  # the largest float32 Gumbel noise, ≈ 16.64


class FavoursForbidden(nn.Module):
    """Logits that favour id 0 (outside generate_ids) by far, the allowed ids 1..8 by position."""

    def forward(self, states):
        pos = states[..., 0]
        logits = torch.zeros((*pos.shape, V))
        logits[..., 0] = 8.0
        return logits.scatter(-1, (pos.long() % 8 + 1)[..., None], 1.0)


IDS = torch.tensor([[7, MASK, MASK, 3, MASK, MASK], [MASK, 2, 2, 2, 2, 0]])
VALID = torch.tensor([[True] * 6, [True] * 5 + [False]])


def stub_model(calls):
    return sampler_stub(calls, FavoursForbidden(), mask_id=MASK, vocab_size=V)


def test_first_hitting_fills_one_uniform_mask_per_call():
    calls = []
    out, filled = fill_first_hitting(stub_model(calls), {"ids": IDS, "valid": VALID}, generator=torch.Generator().manual_seed(0))
    assert torch.equal(filled, (IDS == MASK) & VALID)
    assert len(calls) == 4  # the most masks of a row: one model call per mask
    assert ((out[filled] >= 1) & (out[filled] < 9)).all()  # never id 0 (favoured) nor the mask id
    assert torch.equal(out[~filled], IDS[~filled])  # visible and void ids stay
    for before, after in zip(calls, calls[1:]):
        assert (before.sum(1) - after.sum(1)).tolist() == [1, 1 if before[1].any() else 0] and (after <= before).all()
    again, _ = fill_first_hitting(stub_model([]), {"ids": IDS, "valid": VALID}, generator=torch.Generator().manual_seed(0))
    assert torch.equal(again, out)  # a seeded generator reproduces the sample


def test_first_hitting_picks_positions_uniformly_and_draws_each_token_from_the_model():
    calls = []
    ids = torch.full((800, 4), MASK)
    out, _ = fill_first_hitting(stub_model(calls), {"ids": ids}, generator=torch.Generator().manual_seed(1))
    assert len(calls) == 4
    first = (calls[0] & ~calls[1]).float().argmax(dim=1)  # the position each row unmasked first
    assert torch.bincount(first, minlength=4).sub(200).abs().max() < 50  # 200 ± 3.5 standard deviations
    # position p's ids follow softmax over ids 1..8 with one logit 1 (id p % 8 + 1): ≈ e / (e + 7) = 0.28
    share = (out == (torch.arange(4) % 8 + 1)).float().mean().item()
    assert abs(share - math.e / (math.e + 7)) < 0.03
    greedy, _ = fill_first_hitting(stub_model([]), {"ids": ids[:2]}, temperature=0.0)
    assert greedy.tolist() == [[1, 2, 3, 4]] * 2


def test_first_hitting_times_are_the_order_statistics_of_uniform_masking_times():
    times = first_hitting_times(torch.tensor([5] * 20000 + [2]), torch.Generator().manual_seed(0))
    assert times.shape == (20001, 5) and times.dtype == torch.float64
    assert (times[:, 1:] <= times[:, :-1]).all() and (times[-1, 2:] == 0).all() and (times[-1, :2] > 0).all()
    # the k-th unmasking is the k-th largest of 5 uniform times: mean (5 + 1 - k) / 6
    assert torch.allclose(times[:-1].mean(dim=0), torch.tensor([5.0, 4, 3, 2, 1], dtype=torch.float64) / 6, atol=0.01)


def test_token_by_token_calls_the_model_every_step_and_fills_every_mask():
    calls = []
    out, filled = fill_token_by_token(stub_model(calls), {"ids": IDS, "valid": VALID}, steps=50, generator=torch.Generator().manual_seed(0))
    assert torch.equal(filled, (IDS == MASK) & VALID) and ((out[filled] >= 1) & (out[filled] < 9)).all()
    assert torch.equal(out[~filled], IDS[~filled])
    assert 1 <= len(calls) <= 50
    unmasked = [int((b & ~a).sum()) for b, a in zip(calls, calls[1:])]
    assert unmasked.count(0) > 30  # most of the 50 steps unmask nothing: what first-hitting skips
    one, _ = fill_token_by_token(stub_model(one_call := []), {"ids": IDS, "valid": VALID}, steps=1, temperature=0.0)
    assert len(one_call) == 1 and one.tolist() == [[7, 2, 3, 3, 5, 6], [1, 2, 2, 2, 2, 0]]  # step j = 1 unmasks all
    for bad in (dict(steps=0), dict(steps=4, precision=torch.float16)):
        with pytest.raises(ConfigError, match="steps 0|precision"):
            fill_token_by_token(stub_model([]), {"ids": IDS}, **bad)


def test_token_by_token_unmasks_at_the_reverse_process_rate():
    """Over S steps a masked position is unmasked at step j with probability 1/j given it is still masked:
    its unmasking step is uniform on S..1."""
    calls = []
    fill_token_by_token(stub_model(calls), {"ids": torch.full((4000, 1), MASK)}, steps=4, generator=torch.Generator().manual_seed(0))
    still = torch.tensor([int(c.sum()) for c in calls])  # masked when each step starts
    assert len(calls) == 4 and (still - torch.tensor([4000, 3000, 2000, 1000])).abs().max() < 120


def test_float32_noise_is_truncated_and_float64_is_not():
    """The float32 path draws float32 uniforms: its Gumbel noise never exceeds -log(-log(1 - 2^-24)) ≈ 16.64,
    so a token further below the best one than the whole float32 noise range can never be drawn; float64
    noise passes that cap about once in 2^24 draws (10^8 draws: 6 expected, P(none) = 0.3 %)."""
    g = torch.Generator().manual_seed(0)
    low = gumbel_noise((4_000_000,), "cpu", g, torch.float32)
    assert low.dtype == torch.float32 and low.max().item() <= FLOAT32_CAP + 1e-5
    above = sum(int((gumbel_noise((10_000_000,), "cpu", g, torch.float64) > FLOAT32_CAP + 1e-5).sum()) for _ in range(10))
    assert above >= 1
    floor = -math.log(-math.log(torch.finfo(torch.float32).tiny))  # the least float32 noise, ≈ -4.47
    logits = torch.tensor([0.0, -(FLOAT32_CAP - floor) - 0.5, -3.0]).expand(200_000, -1)
    ids32, p32 = sample_categorical(logits, 1.0, g, precision=torch.float32)
    assert p32.dtype == torch.float32 and not (ids32 == 1).any()  # beyond the float32 noise: never drawn
    ids64, _ = sample_categorical(logits, 1.0, g)
    for ids in (ids32, ids64):  # the rest of the distribution is the same
        assert abs((ids == 2).float().mean().item() - math.exp(-3) / (1 + math.exp(-3))) < 0.003


def test_float64_sampling_is_unchanged_bit_for_bit():
    logits = torch.randn(64, 50, generator=torch.Generator().manual_seed(3))
    ids, conf = sample_categorical(logits, 0.7, torch.Generator().manual_seed(4))
    logp = torch.log_softmax(logits.double(), dim=-1)
    u = torch.rand(logp.shape, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    expected = (logp / 0.7 - torch.log(-torch.log(u.clamp_(min=torch.finfo(torch.float64).tiny, max=1 - 1e-16)))).argmax(-1)
    assert torch.equal(ids, expected) and torch.equal(conf, logp.gather(-1, expected[:, None])[:, 0].exp())


def lengths_batch(lengths, n):
    valid = torch.arange(n)[None, :] < torch.tensor(lengths)[:, None]
    return Tokens(torch.zeros(len(lengths), n, dtype=torch.long), torch.zeros(1, n, 1), valid, {})


def test_per_sample_ratios_differ_across_rows_and_the_default_is_unchanged():
    tokens = lengths_batch([10] * 4000, 10)
    counts = DiffusionMasking(per_sample=True)(tokens, torch.Generator().manual_seed(0)).sum(dim=1)
    assert counts.min() >= 1 and counts.max() <= 10
    assert torch.bincount(counts, minlength=11)[1:].sub(400).abs().max() < 75  # uniform on 1..10: the time-free form
    ragged = lengths_batch([30, 30, 30, 30, 12, 0], 30)
    hidden = DiffusionMasking(per_sample=True)(ragged, torch.Generator().manual_seed(1))
    assert len(set(hidden.sum(1)[:4].tolist())) > 1 and not (hidden & ~ragged.valid).any() and hidden[5].sum() == 0
    assert (
        DiffusionMasking(ratio=0.5, per_sample=True)(ragged, torch.Generator().manual_seed(2)).sum(1) <= torch.tensor([15] * 4 + [6, 0])
    ).all()
    # one t per batch, as before: the same mask bit for bit
    u = torch.rand(1 + 6 * 30, generator=torch.Generator().manual_seed(3))
    before = hide_whole_units(u[1:].view(6, 30), budget_of_valid(ragged.valid, 0.1 + (0.9 - 0.1) * u[0]), ragged.valid, None)
    assert torch.equal(DiffusionMasking(0.9, 0.1)(ragged, torch.Generator().manual_seed(3)), before)
    assert DiffusionMasking().token_weights(before, ragged.valid) is None


def test_elbo_weights_are_length_over_hidden_count():
    scored = torch.tensor([[1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0], [0, 1, 1, 1, 0, 0]], dtype=torch.bool)
    valid = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    weights = DiffusionMasking(per_sample=True).token_weights(scored, valid)
    expected = torch.tensor([[2.0, 2, 0, 0, 0, 0], [6, 0, 0, 0, 0, 0], [0, 1, 1, 1, 0, 0]])
    assert weights.dtype == torch.float32 and torch.equal(weights, expected)
    assert weights.sum() == valid.sum()  # the weights sum to the tokens of the batch: the ELBO per token
    assert torch.equal(DiffusionMasking(per_sample=True).token_weights(scored, None)[0], torch.tensor([3.0, 3, 0, 0, 0, 0]))


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    pytest.importorskip("mm_text")
    from mm_text.vocab import train_tokenizer

    from mmcore.model import MaskedModel
    from mmcore.testing import tiny_config

    sentences = ["The cat sat on the mat.", "A dog ran across the garden and barked.", "Assignment statements bind names to values."]
    vocab = train_tokenizer(sentences * 3, "wordpiece", 200, True).to_str()
    torch.manual_seed(0)
    config = tiny_config("text", "diffusion", tokenizer={"tokenizer_json": vocab, "max_length": 32})
    model = MaskedModel(config)
    path = tmp_path_factory.mktemp("diffusion-text")
    model.save_pretrained(path)
    return str(path), config, sentences


def test_per_sample_loss_is_the_elbo_per_token(text_model):
    """Σ_b (L_b / k_b) Σ_hidden CE over Σ_b L_b, by hand from the model's own per-token losses."""
    from mmcore.model import MaskedModel

    _, config, sentences = text_model
    config = {**config, "masking": {"name": "diffusion", "per_sample": True}}
    model = MaskedModel(config).eval()
    batch = model.tokenizer.collate([{"text": s} for s in sentences])
    with torch.no_grad():
        out = model(batch, generator=torch.Generator().manual_seed(0))
    valid = batch["valid"]
    hidden = out.hidden & valid
    k, length = hidden.sum(1), valid.sum(1)
    assert len(set((k / length).tolist())) > 1
    ce = out.token_loss * hidden.gather(1, out.index)  # [B, K] cross-entropy of each scored slot
    total, count = out.loss_terms()
    assert count.item() == pytest.approx(length.sum().item(), rel=1e-6)
    assert torch.allclose(total, ((length / k) * ce.sum(1)).sum(), rtol=1e-5)
    default = MaskedModel({**config, "masking": {"name": "diffusion"}}).eval()
    with torch.no_grad():
        plain = default(batch, generator=torch.Generator().manual_seed(0))
    assert plain.loss_terms()[1].item() == (plain.hidden & valid).sum().item()  # unchanged: one per scored token


def test_mm_fill_first_hitting(text_model, capsys):
    from mmcore.cli import main

    folder, _, _ = text_model
    prompts = ["The [MASK] sat on the [MASK].", "A dog [MASK] [MASK] the garden."]
    assert main(["fill", folder, *prompts, "--sampler", "first-hitting", "--seed", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and "[MASK]" not in "".join(lines)
    assert lines[0].startswith("the") and lines[1].startswith("a dog") and lines[1].endswith("the garden.")
    assert main(["fill", folder, *prompts, "--sampler", "first-hitting", "--seed", "3"]) == 0
    assert capsys.readouterr().out.splitlines() == lines  # the seed fixes the sample
    assert main(["fill", folder, "The [MASK] sat.", "--sampler", "first-hitting", "--argmax"]) == 2
    assert "--argmax is MaskGIT's one-shot fill" in capsys.readouterr().err
