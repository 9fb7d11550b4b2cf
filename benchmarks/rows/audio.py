"""Audio row: mmcore's AudioMAE against transformers.ViTMAEForPreTraining on spectrogram-shaped input.

transformers has no AudioMAE; its ViTMAE with one channel and an image size of
(frames, mel bins) is the same architecture (AudioMAE is a ViT-MAE on
spectrogram patches) and ViTMAE has a CLS token (one extra encoder token).
ViTMAE's position table assumes a square patch grid, so each preset has a
square number of patches: cpu-tiny is 128 frames × 128 bins (8 × 8 patches),
h100 is 512 × 128 (32 × 8 = 256 = 16², the table's layout is wrong but its
cost is the same). Both draw an 80% random mask inside the step; both
predict per-patch normalised values. mmcore gets [B, T, F] log-mel, ViTMAE
[B, 1, T, F].
"""

from __future__ import annotations

import torch

UNIT = "spec/s"
PRESETS = {
    # frames, mel bins, patch, enc (dim, depth, heads), dec (dim, depth, heads), batch, mask ratio
    "cpu-tiny": dict(frames=128, bins=128, patch=16, enc=(192, 4, 3), dec=(128, 2, 4), batch=32, ratio=0.8),
    "h100": dict(frames=512, bins=128, patch=16, enc=(768, 12, 12), dec=(512, 16, 16), batch=64, ratio=0.8),
}


def make_inputs(p: dict, device: torch.device) -> list[dict[str, torch.Tensor]]:
    out = []
    for _ in range(4):
        spec = torch.randn(p["batch"], p["frames"], p["bins"], device=device)
        out.append({"mmcore": spec, "peer": spec[:, None]})
    return out


def build_mmcore(p: dict, device: torch.device):
    from mmcore.model import MaskedModel

    config = {
        "modality": "audio",
        "style": "mae",
        "tokenizer": {"num_mel_bins": p["bins"], "target_frames": p["frames"], "patch_size": [p["patch"], p["patch"]]},
        "masking": {"name": "random", "ratio": p["ratio"]},
        "target": {"name": "fbank", "norm_pix": True},
        "encoder": dict(zip(("dim", "depth", "heads"), p["enc"]), mlp_ratio=4.0),
        "decoder": dict(zip(("dim", "depth", "heads"), p["dec"]), mlp_ratio=4.0),
    }
    model = MaskedModel(config).to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    return model, lambda x: model({"fbank": x["mmcore"]}, generator=generator).loss


def build_peer(p: dict, device: torch.device):
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    (d, depth, heads), (dd, ddepth, dheads) = p["enc"], p["dec"]
    config = ViTMAEConfig(
        image_size=(p["frames"], p["bins"]),
        patch_size=p["patch"],
        num_channels=1,
        hidden_size=d,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        intermediate_size=4 * d,
        decoder_hidden_size=dd,
        decoder_num_hidden_layers=ddepth,
        decoder_num_attention_heads=dheads,
        decoder_intermediate_size=4 * dd,
        mask_ratio=p["ratio"],
        norm_pix_loss=True,
        attn_implementation="sdpa",
    )
    model = ViTMAEForPreTraining(config).to(device)
    return "transformers.ViTMAEForPreTraining", model, lambda x: model(pixel_values=x["peer"]).loss


def items_per_batch(p: dict) -> int:
    return p["batch"]
