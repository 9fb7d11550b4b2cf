"""Text row: mmcore's BERT-style text model against transformers.BertForMaskedLM, same architecture.

Both: learned absolute positions, `layers` blocks of width `dim`, GELU MLP of
4×dim, the BERT MLM head (dense, GELU, LayerNorm, vocabulary projection),
15% of tokens hidden with 80/10/10. BERT ties the vocabulary projection to the
input embedding and scores every position (labels -100 elsewhere); mmcore runs
the head at hidden positions only. Full-length batches (no padding) for both.
"""

from __future__ import annotations

import torch

UNIT = "tok/s"
PRESETS = {
    # vocabulary (BERT uncased), sequence length, (dim, depth, heads), batch
    "cpu-tiny": dict(vocab=30522, length=128, enc=(128, 2, 2), batch=16),
    "h100": dict(vocab=30522, length=512, enc=(768, 12, 12), batch=64),
}
RATIO = 0.15


def make_inputs(p: dict, device: torch.device) -> list[torch.Tensor]:
    return [torch.randint(1000, p["vocab"], (p["batch"], p["length"]), device=device) for _ in range(4)]


def _tokenizer_json(vocab: int) -> str:
    """A WordPiece vocabulary of BERT's size (103 = [MASK]) without needing its files."""
    from tokenizers import Tokenizer, models

    names = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    names += [f"w{i}" for i in range(vocab - len(names))]
    tok = Tokenizer(models.WordPiece({n: i for i, n in enumerate(names)}, unk_token="[UNK]"))
    tok.add_special_tokens(names[:1] + names[100:104])
    return tok.to_str()


def build_mmcore(p: dict, device: torch.device):
    from mmcore.model import MaskedModel

    d, depth, heads = p["enc"]
    config = {
        "modality": "text",
        "style": "bert",
        "tokenizer": {"tokenizer_json": _tokenizer_json(p["vocab"]), "max_length": p["length"]},
        "masking": {"name": "bert", "ratio": RATIO},
        "target": {"name": "ids"},
        "encoder": {"dim": d, "depth": depth, "heads": heads, "mlp_ratio": 4.0},
        "decoder": {"dim": d, "depth": 1, "heads": heads, "mlp_ratio": 4.0},
    }
    model = MaskedModel(config).to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    word_ids = torch.arange(p["length"], device=device).expand(p["batch"], -1)
    return model, lambda ids: model({"ids": ids, "word_ids": word_ids}, generator=generator).loss


def build_peer(p: dict, device: torch.device):
    from transformers import BertConfig, BertForMaskedLM

    d, depth, heads = p["enc"]
    config = BertConfig(
        vocab_size=p["vocab"],
        hidden_size=d,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        intermediate_size=4 * d,
        max_position_embeddings=p["length"],
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        attn_implementation="sdpa",
    )
    model = BertForMaskedLM(config).to(device)
    return "transformers.BertForMaskedLM", model, lambda ids: model(**bert_batch(ids, 103, p["vocab"])).loss


def bert_batch(ids: torch.Tensor, mask_id: int, vocab: int, lo: int = 1000) -> dict[str, torch.Tensor]:
    """What DataCollatorForLanguageModeling does: 15% scored, 80/10/10 at the input, -100 elsewhere."""
    hidden = torch.rand(ids.shape, device=ids.device) < RATIO
    u = torch.rand(ids.shape, device=ids.device)
    inputs = torch.where(hidden & (u < 0.8), mask_id, ids)
    inputs = torch.where(hidden & (u >= 0.8) & (u < 0.9), torch.randint_like(ids, lo, vocab), inputs)
    return {"input_ids": inputs, "labels": ids.masked_fill(~hidden, -100)}


def items_per_batch(p: dict) -> int:
    return p["batch"] * p["length"]
