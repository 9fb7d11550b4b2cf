"""Protein row: mmcore's ESM-style model against transformers.EsmForMaskedLM, same width and depth.

Both: the 33-token ESM-2 alphabet, `layers` pre-norm blocks of width `dim`,
GELU MLP of 4×dim, the MLM head (dense, GELU, LayerNorm, projection), 15%
hidden with 80/10/10. ESM uses rotary positions and scores every position;
mmcore uses learned positions and runs the head at hidden positions only.
"""

from __future__ import annotations

import torch

from rows.text import RATIO, bert_batch

UNIT = "res/s"
PRESETS = {
    # sequence length, (dim, depth, heads), batch
    "cpu-tiny": dict(length=256, enc=(128, 2, 4), batch=16),
    "h100": dict(length=1024, enc=(480, 12, 20), batch=32),  # ESM-2 35M
}


def make_inputs(p: dict, device: torch.device) -> list[torch.Tensor]:
    return [torch.randint(4, 24, (p["batch"], p["length"]), device=device) for _ in range(4)]


def build_mmcore(p: dict, device: torch.device):
    from mmcore.model import MaskedModel

    d, depth, heads = p["enc"]
    config = {
        "modality": "protein",
        "style": "bert",
        "tokenizer": {"max_length": p["length"]},
        "masking": {"name": "bert", "ratio": RATIO},
        "target": {"name": "ids"},
        "encoder": {"dim": d, "depth": depth, "heads": heads, "mlp_ratio": 4.0},
        "decoder": {"dim": d, "depth": 1, "heads": heads, "mlp_ratio": 4.0},
    }
    model = MaskedModel(config).to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    return model, lambda ids: model({"ids": ids}, generator=generator).loss


def build_peer(p: dict, device: torch.device):
    from transformers import EsmConfig, EsmForMaskedLM

    d, depth, heads = p["enc"]
    config = EsmConfig(
        vocab_size=33,
        hidden_size=d,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        intermediate_size=4 * d,
        max_position_embeddings=p["length"] + 2,
        position_embedding_type="rotary",
        pad_token_id=1,
        mask_token_id=32,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        token_dropout=False,
        emb_layer_norm_before=False,
        attn_implementation="sdpa",
    )
    model = EsmForMaskedLM(config).to(device)
    return "transformers.EsmForMaskedLM", model, lambda ids: model(**bert_batch(ids, 32, 24, lo=4)).loss


def items_per_batch(p: dict) -> int:
    return p["batch"] * p["length"]
