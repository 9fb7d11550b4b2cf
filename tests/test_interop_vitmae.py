"""Image MAE ↔ transformers' ViTMAEForPreTraining, decoder included (mmcore.interop.hf_vitmae).

Tiny random peers built from ViTMAEConfig (no download): imported, run on the same mask as
ViTMAE's ``noise`` gives, exported back and loaded by transformers' own ``from_pretrained``;
encoder states, predicted pixels and losses agree to 1e-5 in fp32.
"""

import json

import pytest
import torch

import mmcore
from mmcore.cli import main
from mmcore.config import check_model_config, model_section
from mmcore.errors import ConfigError
from mmcore.interop import NoExactPeer, export_model, import_model
from mmcore.interop.hf_vitmae import peer_states
from mmcore.model import MaskedModel, mae_order, record_sources, structure_of

transformers = pytest.importorskip("transformers")
from transformers import AutoImageProcessor, ViTMAEConfig, ViTMAEForPreTraining  # noqa: E402

ATOL = 1e-5
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def vitmae(**kwargs):
    """A tiny random ViTMAEForPreTraining (16x16 images, 4-pixel patches); its fixed position tables kept,
    every other weight drawn wide enough that a wrong mapping shows."""
    args = {
        "image_size": 16,
        "patch_size": 4,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "decoder_hidden_size": 16,
        "decoder_num_hidden_layers": 1,
        "decoder_num_attention_heads": 4,
        "decoder_intermediate_size": 32,
        "norm_pix_loss": True,
    }
    torch.manual_seed(5)
    peer = ViTMAEForPreTraining(ViTMAEConfig(**{**args, **kwargs})).eval()
    with torch.no_grad():
        for name, p in peer.named_parameters():
            if "pos_embed" not in name and "position_embeddings" not in name:
                p.normal_(std=0.2)
    return peer


def saved(peer, folder, mean=MEAN, std=STD):
    peer.save_pretrained(folder)
    if mean is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps({"do_normalize": True, "image_mean": mean, "image_std": std}))
    return folder


def image_mae(
    image_size=(16, 16), class_token=True, reads_class=True, norm_eps=1e-12, decoder_eps=None, mean=MEAN, std=STD, positions=None, **extra
):
    """An mmcore-native image MAE with the options ViTMAE needs (each one can be turned off)."""
    tokenizer = {
        "image_size": list(image_size),
        "patch_size": 4,
        "mean": mean,
        "std": std,
        **({"positions": positions} if positions else {}),
    }
    config = {
        "modality": "image",
        "tokenizer": tokenizer,
        "masking": {"name": "random"},
        "target": {"name": "pixels"},
        "encoder": {"dim": 32, "depth": 2, "heads": 4, "class_token": class_token, "norm_eps": norm_eps},
        "decoder": {"dim": 16, "depth": 1, "heads": 4, "norm_eps": decoder_eps or norm_eps},
        **({"decoder_reads_class_token": True} if reads_class else {}),
        **extra,
    }
    config.update(record_sources(config))
    torch.manual_seed(0)
    model = MaskedModel(check_model_config(config, "test")).eval()
    with torch.no_grad():  # away from the init (zero biases, unit norms), so that a wrong mapping shows
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def normalised(x, mean, std):
    C = x.shape[1]
    return (x - torch.tensor(mean or [0.0] * C).view(1, -1, 1, 1)) / torch.tensor(std or [1.0] * C).view(1, -1, 1, 1)


def images(n=2, seed=2):
    return torch.rand(n, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def compare(model, peer, x, noise):
    """(max abs difference of the encoder's outputs, class token's included, of the predicted pixels at the
    hidden patches, of the loss) for the mask ``noise`` gives ViTMAE."""
    tok = model.tokenizer
    with torch.no_grad():
        theirs = peer(pixel_values=normalised(x, tok.mean, tok.std), noise=noise)
        latent = peer.vit(pixel_values=normalised(x, tok.mean, tok.std), noise=noise).last_hidden_state
        hidden = theirs.mask.bool()  # ViTMAE's mask (1 = hidden) is mmcore's hidden=
        ours = model({"images": x}, hidden=hidden)
        keep = noise.argsort(dim=1)[:, : latent.shape[1] - 1]  # ViTMAE's visible patches, in its order
        embedded = model.embedder(model.tokenizer.tokenize({"images": x}), hidden)
        states = model.encoder(
            embedded.gather(1, keep[..., None].expand(-1, -1, embedded.shape[-1])), keep_prefix=True
        )  # [B, 1 + V, D]: the class row first, as ViTMAE's
    assert bool(hidden.gather(1, ours.index).all())  # mmcore predicts exactly ViTMAE's hidden patches
    pixels = theirs.logits.gather(1, ours.index[..., None].expand(-1, -1, theirs.logits.shape[-1]))
    return ((states - latent).abs().max().item(), (ours.pred - pixels).abs().max().item(), abs(ours.loss.item() - theirs.loss.item()))


NOISE = torch.rand(2, 16, generator=torch.Generator().manual_seed(3))  # fixes ViTMAE's mask: 12 of 16 hidden


# -- import ---------------------------------------------------------------------------


@pytest.mark.parametrize("norm_pix", [True, False])
def test_import_gives_vitmae_encoder_decoder_and_loss(tmp_path, norm_pix):
    peer = vitmae(norm_pix_loss=norm_pix)
    folder, diff, notes = import_model(saved(peer, tmp_path / "hf"), "transformers", tmp_path / "mae")
    assert diff <= ATOL and any("decoder imported" in n for n in notes)
    assert not any("freshly" in n for n in notes)
    model = mmcore.from_pretrained(folder)
    c = model.config
    assert c["decoder_reads_class_token"] and c["encoder"]["class_token"] and c["target"]["norm_pix"] == norm_pix
    assert c["decoder"]["norm_eps"] == c["encoder"]["norm_eps"] == 1e-12
    encoder, pixels, loss = compare(model, peer, images(), NOISE)
    print(f"import norm_pix={norm_pix}: encoder {encoder:.3g}, pixels {pixels:.3g}, loss {loss:.3g}")
    assert encoder <= ATOL and pixels <= ATOL and loss <= ATOL
    out = model({"images": images()}, generator=torch.Generator().manual_seed(0))  # it continues pretraining
    out.loss.backward()
    assert model.decoder_embed.weight.grad is not None and model.encoder.cls_token.grad.abs().sum() > 0
    assert "decoder_class_pos" not in dict(model.named_parameters())  # ViTMAE's position rows stay fixed


def test_import_of_vitmae_model_without_decoder_gets_a_fresh_one(tmp_path):
    peer = vitmae()
    peer.vit.save_pretrained(tmp_path / "enc")  # a ViTMAEModel folder: no decoder weights
    folder, diff, notes = import_model(tmp_path / "enc", "transformers", tmp_path / "mae")
    assert diff <= ATOL and any("freshly initialised" in n and "ViTMAEModel" in n for n in notes)
    model = mmcore.from_pretrained(folder)
    assert model.config["decoder_reads_class_token"]
    x = images()
    theirs = peer_states(peer, x, None, None)  # every patch, in patch order (no preprocessor: images as given)
    assert (model.encode({"images": x})[0] - theirs).abs().max() <= ATOL


# -- export ---------------------------------------------------------------------------


def test_round_trip_through_transformers_keeps_outputs(tmp_path):
    peer = vitmae()
    imported, _, _ = import_model(saved(peer, tmp_path / "hf"), "transformers", tmp_path / "mae")
    folder, diff = export_model(imported, "transformers", tmp_path / "back")
    assert diff <= ATOL
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors", "preprocessor_config.json"]
    again = ViTMAEForPreTraining.from_pretrained(folder).eval()  # transformers' own loader
    x = images()
    with torch.no_grad():
        a = peer(pixel_values=normalised(x, MEAN, STD), noise=NOISE)
        b = again(pixel_values=normalised(x, MEAN, STD), noise=NOISE)
    print(f"round trip: logits {(a.logits - b.logits).abs().max().item():.3g}, loss {(a.loss - b.loss).abs().item():.3g}")
    assert (a.logits - b.logits).abs().max() <= ATOL and (a.loss - b.loss).abs() <= ATOL
    assert again.config.layer_norm_eps == 1e-12 and again.config.norm_pix_loss
    processor = AutoImageProcessor.from_pretrained(folder)
    assert list(processor.image_mean) == MEAN and list(processor.image_std) == STD


@pytest.mark.parametrize("positions, mean, std", [(None, MEAN, STD), ("learned", None, None), ("fixed", [0.5] * 3, None)])
def test_export_of_an_mmcore_mae_gives_equal_outputs(tmp_path, positions, mean, std):
    model = image_mae(positions=positions, mean=mean, std=std)
    folder, diff = export_model(model, "transformers", tmp_path / "hf")
    assert diff <= ATOL
    peer = ViTMAEForPreTraining.from_pretrained(folder).eval()
    encoder, pixels, loss = compare(model, peer, images(seed=4), NOISE)
    print(f"export positions={positions}: encoder {encoder:.3g}, pixels {pixels:.3g}, loss {loss:.3g}")
    assert encoder <= ATOL and pixels <= ATOL and loss <= ATOL
    processor = json.loads((folder / "preprocessor_config.json").read_text())
    assert processor["do_normalize"] == (mean is not None or std is not None)
    back, diff, _ = import_model(folder, "transformers", tmp_path / "back")  # and in again: the same model
    again = mmcore.from_pretrained(back)
    x = images(seed=5)
    hidden = torch.rand(2, 16, generator=torch.Generator().manual_seed(6)).argsort(dim=1) < 12
    assert (again({"images": x}, hidden=hidden).pred - model({"images": x}, hidden=hidden).pred).abs().max() <= ATOL


def test_cli_export_to_transformers(tmp_path, capsys):
    image_mae().save_pretrained(tmp_path / "model")
    code = main(["export", str(tmp_path / "model"), "--to", "transformers", "-o", str(tmp_path / "hf")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip() == str(tmp_path / "hf") and "exact: max abs difference" in err
    image_mae(reads_class=False).save_pretrained(tmp_path / "plain")
    code = main(["export", str(tmp_path / "plain"), "--to", "transformers", "-o", str(tmp_path / "x")])
    out, err = capsys.readouterr()
    assert code == 2 and err.startswith("mm: error: ") and "decoder_reads_class_token" in err
    assert err.count("\n") == 1 and not (tmp_path / "x").exists()


# -- refusals -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, says",
    [
        ({"class_token": False, "reads_class": False}, "encoder.class_token is false; ViTMAE's encoder prepends"),
        ({"reads_class": False}, "decoder_reads_class_token is false; ViTMAE's decoder reads the encoder's class-token"),
        ({"image_size": (16, 12)}, "images of 16x12 pixels; ViTMAE's are square"),
        ({"decoder_eps": 1e-6}, "encoder.norm_eps 1e-12 and decoder.norm_eps 1e-06 differ"),
    ],
)
def test_export_refuses_what_vitmae_cannot_compute(tmp_path, options, says):
    with pytest.raises(NoExactPeer, match="no exact transformers ViTMAEForPreTraining for this model: .*" + says) as info:
        export_model(image_mae(**options), "transformers", tmp_path / "x")
    assert "\n" not in str(info.value) and not (tmp_path / "x").exists()
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temporary folder


def test_export_refuses_bert_style(tmp_path):
    bert = image_mae(reads_class=False, style="bert")
    with pytest.raises(NoExactPeer, match="style 'bert'; ViTMAEForPreTraining is an MAE"):
        export_model(bert, "transformers", tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


def test_decoder_reads_class_token_needs_mae_and_a_class_token():
    with pytest.raises(ConfigError, match="decoder_reads_class_token needs the MAE style and model.encoder.class_token"):
        image_mae(class_token=False)
    with pytest.raises(ConfigError, match="decoder_reads_class_token needs the MAE style"):
        image_mae(style="bert")
    from omegaconf import OmegaConf

    from mmcore.config import ModelConfig

    joint = OmegaConf.merge(
        OmegaConf.structured(ModelConfig), {"modalities": {"a": {"modality": "image"}}, "decoder_reads_class_token": True}
    )
    with pytest.raises(ConfigError, match="decoder_reads_class_token is for one modality's MAE"):
        model_section(joint)


# -- the defaults leave existing models as they were ------------------------------------


def old_mae_pass(model, x, order, num_hidden, valid, structure, decoder_positions):
    """mmcore.model.mae_pass before decoder_reads_class_token existed (image batches: no valid, no structure)."""
    B, N, D = x.shape
    V = N - num_hidden
    h = model.encoder(x.gather(1, order[:, :V, None].expand(-1, -1, D)), None, structure=None)
    y = model.decoder_embed(h)
    y = torch.cat([y, model.mask_token.to(y.dtype).expand(B, num_hidden, -1)], dim=1)
    y = y + decoder_positions.expand(B, -1, -1).gather(1, order[..., None].expand(-1, -1, y.shape[-1]))
    return model.decoder(y, None, keep_last=num_hidden, structure=None)


@pytest.mark.parametrize("class_token", [False, True])
def test_defaults_leave_image_models_unchanged(class_token):
    model = image_mae(class_token=class_token, reads_class=False, norm_eps=1e-6)
    assert "decoder_reads_class_token" not in model.config  # config.json as before
    assert not model.decoder_reads_class_token and "decoder_class_pos" not in model.state_dict()
    x = images()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        out = model({"images": x}, generator=g)
        tokens = model.tokenizer.tokenize({"images": x})
        hidden = out.hidden
        before = old_mae_pass(
            model,
            model.embedder(tokens, hidden),
            mae_order(hidden, None),
            out.index.shape[1],
            None,
            structure_of(model.embedder, tokens, hidden),
            model.embedder.decoder_positions(tokens),
        )
    assert torch.equal(out.pred, model.head(before))  # bit for bit
    on, off = image_mae(norm_eps=1e-6), image_mae(reads_class=False, norm_eps=1e-6)
    assert set(on.state_dict()) - set(off.state_dict()) == {"decoder_class_pos"}  # the one key the option adds
    assert set(off.state_dict()) <= set(on.state_dict())
    with torch.no_grad():
        pred = on({"images": x}, hidden=hidden).pred
    assert pred.shape == out.pred.shape  # outputs at hidden patches only: the class row is a key, never an output
