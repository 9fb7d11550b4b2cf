"""Video row: mmcore's VideoMAE against transformers.VideoMAEForPreTraining, same architecture.

Both hide the same number of tubelets per clip with tube masking drawn on the
device inside the step (VideoMAEForPreTraining takes the mask as an input, so
its step draws one the way mmcore's policy does). Both use normalised-pixel
targets. Each side gets the clips in its own layout, made once outside the
timed steps: mmcore [B, C, T, H, W], transformers [B, T, C, H, W].
"""

from __future__ import annotations

import torch

UNIT = "clip/s"
PRESETS = {
    # frames, image, tubelet (t, p), channels, enc (dim, depth, heads), dec (dim, depth, heads), batch, mask ratio
    "cpu-tiny": dict(frames=8, image=32, tubelet=(2, 8), channels=3, enc=(192, 4, 3), dec=(128, 2, 4), batch=16, ratio=0.9),
    "h100": dict(frames=16, image=224, tubelet=(2, 16), channels=3, enc=(768, 12, 12), dec=(384, 4, 6), batch=32, ratio=0.9),
}


def make_inputs(p: dict, device: torch.device) -> list[dict[str, torch.Tensor]]:
    out = []
    for _ in range(4):
        clips = torch.rand(p["batch"], p["channels"], p["frames"], p["image"], p["image"], device=device)
        out.append({"mmcore": clips, "peer": clips.transpose(1, 2).contiguous()})
    return out


def build_mmcore(p: dict, device: torch.device):
    from mmcore.model import MaskedModel

    t, s = p["tubelet"]
    config = {
        "modality": "video",
        "style": "mae",
        "tokenizer": {
            "num_frames": p["frames"],
            "image_size": [p["image"], p["image"]],
            "tubelet_size": [t, s, s],
            "channels": p["channels"],
        },
        "masking": {"name": "tube", "ratio": p["ratio"]},
        "target": {"name": "pixels", "norm_pix": True},
        "encoder": dict(zip(("dim", "depth", "heads"), p["enc"]), mlp_ratio=4.0),
        "decoder": dict(zip(("dim", "depth", "heads"), p["dec"]), mlp_ratio=4.0),
    }
    model = MaskedModel(config).to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    return model, lambda x: model({"clips": x["mmcore"]}, generator=generator).loss


def tube_mask(p: dict, device: torch.device, generator: torch.Generator) -> torch.Tensor:
    """[B, N] bool: the same spatial cells in every time slot, exactly round(ratio × N) per clip."""
    t, s = p["tubelet"]
    gt, cells = p["frames"] // t, (p["image"] // s) ** 2
    B, N = p["batch"], gt * cells
    score = torch.rand(B, 1, cells, device=device, generator=generator).expand(-1, gt, -1)
    score = (score + 1e-3 * torch.rand(B, gt, cells, device=device, generator=generator)).reshape(B, N)
    return score.argsort(dim=1).argsort(dim=1) < int(round(p["ratio"] * N))


def build_peer(p: dict, device: torch.device):
    from transformers import VideoMAEConfig, VideoMAEForPreTraining

    (d, depth, heads), (dd, ddepth, dheads) = p["enc"], p["dec"]
    t, s = p["tubelet"]
    config = VideoMAEConfig(
        image_size=p["image"],
        patch_size=s,
        num_channels=p["channels"],
        num_frames=p["frames"],
        tubelet_size=t,
        hidden_size=d,
        num_hidden_layers=depth,
        num_attention_heads=heads,
        intermediate_size=4 * d,
        decoder_hidden_size=dd,
        decoder_num_hidden_layers=ddepth,
        decoder_num_attention_heads=dheads,
        decoder_intermediate_size=4 * dd,
        norm_pix_loss=True,
        use_mean_pooling=False,
        attn_implementation="sdpa",
    )
    model = VideoMAEForPreTraining(config).to(device)
    generator = torch.Generator(device=device).manual_seed(0)
    return (
        "transformers.VideoMAEForPreTraining",
        model,
        lambda x: model(pixel_values=x["peer"], bool_masked_pos=tube_mask(p, device, generator)).loss,
    )


def items_per_batch(p: dict) -> int:
    return p["batch"]
