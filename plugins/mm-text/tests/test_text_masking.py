import pytest
import torch

from mm_text import WholeWordMasking
from mmcore.discrete import BertMasking, DiffusionMasking, SpanMasking
from mmcore.errors import ConfigError


SENTENCES = [
    "The cat sat on the mat.",
    "A dog ran across the garden and barked at the postman.",
    "Unbelievably, the unbreakable teapot broke.",
    "Short one.",
    "Assignment statements bind names.",
]


def batch_of(tok, n=64):
    texts = [
        SENTENCES[i % len(SENTENCES)] + " catsitting postmanship " + SENTENCES[(i * 3) % len(SENTENCES)] for i in range(n)
    ]  # unseen words: several pieces
    return tok.tokenize(tok.collate([{"text": t} for t in texts]))


def test_bert_budget_follows_valid_length_and_skips_padding(tok, gen):
    tokens = batch_of(tok)
    hidden = BertMasking(ratio=0.3)(tokens, gen(0))
    lengths = tokens.valid.sum(1)
    assert torch.equal(hidden.sum(1), (lengths * 0.3).round().long().clamp_min(1))
    assert not (hidden & ~tokens.valid).any()


def test_bert_corruption_is_80_10_10(tok, gen):
    tokens = batch_of(tok, 256)
    policy = BertMasking(ratio=0.5)
    hidden = policy(tokens, gen(0))
    seen = policy.corrupt(tokens, hidden, gen(1))
    assert seen.meta["corrupted"] and torch.equal(seen.values[~hidden], tokens.values[~hidden])
    before, after = tokens.values[hidden], seen.values[hidden]
    masked = (after == tok.mask_id).float().mean().item()
    kept = (after == before).float().mean().item()
    assert abs(masked - 0.8) < 0.03 and abs(kept - 0.1) < 0.03  # the rest are random ids
    lo, hi = tokens.meta["random_ids"]
    other = after[(after != tok.mask_id) & (after != before)]
    assert other.numel() > 0 and other.min() >= lo and other.max() < hi


def test_whole_word_never_splits_a_word(tok, gen):
    tokens = batch_of(tok)
    words = tokens.meta["word_ids"]
    assert (words.max(1).values + 1 < tokens.valid.sum(1)).any()  # some words have several pieces
    for seed in range(5):
        hidden = WholeWordMasking(ratio=0.3)(tokens, gen(seed))
        for b in range(hidden.shape[0]):
            for w in words[b][tokens.valid[b]].unique():
                states = hidden[b][words[b] == w]
                assert states.all() or not states.any()
        assert hidden.sum() > 0 and (hidden.sum(1) <= (tokens.valid.sum(1) * 0.3).round()).all()


def runs(hidden):
    """Mean length of runs of hidden tokens."""
    h = hidden.int()
    starts = (h[:, 1:] > h[:, :-1]).sum() + h[:, 0].sum()
    return h.sum().item() / starts.item()


def test_span_masks_contiguous_spans(tok, gen):
    tokens = batch_of(tok, 128)
    span = SpanMasking(ratio=0.3)(tokens, gen(0))
    bert = BertMasking(ratio=0.3)(tokens, gen(0))
    assert span.sum() > 0.8 * bert.sum()
    assert runs(span) > 2.0 > 1.6 > runs(bert)
    with pytest.raises(ConfigError, match="model.masking.p 0"):
        SpanMasking(p=0)


def test_diffusion_ratio_drawn_per_batch(tok, gen):
    tokens = batch_of(tok)
    fractions = []
    for seed in range(6):
        hidden = DiffusionMasking()(tokens, gen(seed))
        frac = hidden.sum(1).float() / tokens.valid.sum(1)
        assert frac.max() - frac.min() < 0.15  # one ratio for the whole batch
        fractions.append(frac.mean().item())
    assert max(fractions) - min(fractions) > 0.3
    assert DiffusionMasking(ratio=0.5).num_hidden(40) == 20
    with pytest.raises(ConfigError, match="min_ratio"):
        DiffusionMasking(ratio=0.5, min_ratio=0.7)
    with pytest.raises(ConfigError, match=r"mask_prob 0.9 \+ random_prob 0.2 exceed 1"):
        BertMasking(mask_prob=0.9, random_prob=0.2)


def test_whole_word_and_span_fill_their_budget(tok, gen):
    """A word that does not fit what is left of the budget is passed over, not the end of masking."""
    tokens = batch_of(tok, 128)
    bert = BertMasking(ratio=0.3)(tokens, gen(0)).sum()
    for policy in (WholeWordMasking(ratio=0.3), SpanMasking(ratio=0.3)):
        hidden = policy(tokens, gen(0))
        assert hidden.sum() >= 0.95 * bert, type(policy).__name__
        assert not (hidden & ~tokens.valid).any()
