"""Weights out to timm and back in, ViTMAE in (mmcore.interop), with equal outputs; tiny random peers, no download."""

import json

import pytest

from mmcore.cli import main
import torch

import mmcore
from mmcore.config import check_model_config
from mmcore.continuous import sincos
from mmcore.errors import DataError
from mmcore.interop import NoExactPeer, export_model, import_model
from mmcore.interop.timm_vit import grid_positions
from mmcore.model import MaskedModel, record_sources

timm = pytest.importorskip("timm")
from timm.models import save_for_hf

ATOL = 1e-5


def image_mae(channels=3, class_token=False, mean=None, std=None, positions=None, **encoder):
    tokenizer = {"image_size": [32, 24], "patch_size": 8, "channels": channels, "mean": mean, "std": std}
    config = {
        "modality": "image",
        "tokenizer": {**tokenizer, **({"positions": positions} if positions else {})},
        "masking": {"name": "random"},
        "target": {"name": "pixels"},
        "encoder": {"dim": 32, "depth": 2, "heads": 2, "class_token": class_token, **encoder},
        "decoder": {"dim": 16, "depth": 1, "heads": 2},
    }
    config.update(record_sources(config))
    torch.manual_seed(0)
    return MaskedModel(check_model_config(config, "test")).eval()


def images(model, n=3, seed=1):
    tok = model.tokenizer
    return torch.rand(n, tok.channels, *tok.image_size, generator=torch.Generator().manual_seed(seed))


def normalised(x, mean, std):
    C = x.shape[1]
    return (x - torch.tensor(mean or [0.0] * C).view(1, -1, 1, 1)) / torch.tensor(std or [1.0] * C).view(1, -1, 1, 1)


@pytest.mark.parametrize(
    "channels, class_token, mean, std", [(3, False, [0.5, 0.4, 0.3], [0.2, 0.3, 0.25]), (1, False, None, None), (3, True, None, None)]
)
def test_export_to_timm_gives_equal_outputs(tmp_path, channels, class_token, mean, std):
    model = image_mae(channels, class_token, mean, std)
    folder, diff = export_model(model, "timm", tmp_path / "timm")
    assert diff <= ATOL and sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    assert json.loads((folder / "config.json").read_text())["pretrained_cfg"]["mean"] == list(mean or [0.0] * channels)
    peer = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()  # timm's own loader
    x = images(model)
    with torch.no_grad():
        pooled, states = peer(normalised(x, mean, std)), peer.forward_features(normalised(x, mean, std))
    assert (pooled - model.features({"images": x})).abs().max() <= ATOL  # mmcore's features = timm's pooled output
    ours, _ = model.encode({"images": x})
    assert (states[:, peer.num_prefix_tokens :] - ours).abs().max() <= ATOL


def test_round_trip_through_timm_keeps_outputs(tmp_path):
    model = image_mae(class_token=True, mean=[0.5] * 3, std=[0.25] * 3)
    exported, _ = export_model(model, "timm", tmp_path / "timm")
    back, diff, notes = import_model(exported, "timm", tmp_path / "back")
    assert diff <= ATOL and any("decoder" in n for n in notes)
    again = mmcore.from_pretrained(back)
    x = images(model)
    assert (again.encode({"images": x})[0] - model.encode({"images": x})[0]).abs().max() <= ATOL
    assert again.config["encoder"]["class_token"] and again.config["tokenizer"]["std"] == [0.25] * 3
    out = again({"images": images(model, n=2)}, generator=torch.Generator().manual_seed(0))  # it pretrains: an MAE loss
    assert torch.isfinite(out.loss)


def timm_vit(**kwargs):
    """A timm-native ViT (class token with its own position row, layer scale, no qkv bias, a classifier),
    its patch positions set to mmcore's sin-cos values: everything else random."""
    torch.manual_seed(3)
    args = {
        "img_size": (16, 24),
        "patch_size": 8,
        "embed_dim": 32,
        "depth": 2,
        "num_heads": 2,
        "mlp_ratio": 2.0,
        "qkv_bias": False,
        "init_values": 0.1,
        "num_classes": 5,
        "global_pool": "token",
    }
    peer = timm.create_model("vit_base_patch16_224", pretrained=False, **{**args, **kwargs}).eval()
    with torch.no_grad():
        for p in peer.parameters():
            p.normal_(std=0.2)
        if peer.pos_embed is not None:
            rows = peer.pos_embed.shape[1] - peer.patch_embed.num_patches
            peer.pos_embed[:, rows:] = sincos(grid_positions(*peer.patch_embed.grid_size), 32)
    return peer


def saved(peer, folder):
    save_for_hf(peer, str(folder), safe_serialization=True)
    return folder


def test_import_timm_native_vit_folds_class_position_and_layer_scale(tmp_path):
    peer = timm_vit()
    folder, diff, notes = import_model(saved(peer, tmp_path / "vit"), "timm", tmp_path / "mae")
    assert diff <= ATOL
    assert any("classifier head (5 classes)" in n for n in notes) and any("global_pool='token'" in n for n in notes)
    model = mmcore.from_pretrained(folder)
    x = torch.rand(2, 3, 16, 24)
    mean, std = list(peer.pretrained_cfg["mean"]), list(peer.pretrained_cfg["std"])  # timm's data config travels
    assert model.config["tokenizer"]["mean"] == mean and model.config["tokenizer"]["std"] == std
    with torch.no_grad():
        theirs = peer.forward_features(normalised(x, mean, std))[:, 1:]
    assert (model.encode({"images": x})[0] - theirs).abs().max() <= ATOL


@pytest.mark.parametrize(
    "kwargs, says",
    [
        ({"reg_tokens": 2}, "register tokens"),
        ({"qk_norm": True}, "qk_norm"),
        ({"global_pool": "avg"}, "fc_norm"),
        ({"act_layer": "gelu_tanh"}, "GELU"),
    ],
)
def test_import_refuses_what_differs_and_writes_nothing(tmp_path, kwargs, says):
    peer = timm_vit(**kwargs)
    with pytest.raises(NoExactPeer, match=says) as info:
        import_model(saved(peer, tmp_path / "vit"), "timm", tmp_path / "out")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == ["vit"]


def test_import_refuses_missing_or_foreign_weights(tmp_path):
    folder = saved(timm_vit(), tmp_path / "vit")
    weights = folder / "model.safetensors"
    from safetensors.torch import load_file, save_file

    state = load_file(str(weights))
    save_file({k: v for k, v in state.items() if k != "blocks.1.mlp.fc2.weight"}, str(weights))
    with pytest.raises(DataError, match=r"missing \['blocks.1.mlp.fc2.weight'\]"):
        import_model(folder, "timm", tmp_path / "out")
    (folder / "config.json").write_text(json.dumps({"architecture": "no_such_net", "pretrained_cfg": {}}))
    with pytest.raises(DataError, match="no_such_net"):
        import_model(folder, "timm", tmp_path / "out")
    weights.unlink()
    with pytest.raises(DataError, match="no model.safetensors"):
        import_model(folder, "timm", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_export_refuses_what_has_no_exact_peer(tmp_path, toy_registry):
    with pytest.raises(NoExactPeer, match="ViTMAEForPreTraining for this model: .*encoder.class_token is false"):
        export_model(image_mae(), "transformers", tmp_path / "x")  # more in tests/test_interop_vitmae.py
    with pytest.raises(NoExactPeer, match="norm_eps"):
        export_model(image_mae(norm_eps=1e-12), "timm", tmp_path / "x")
    from toy import toy_config

    with pytest.raises(NoExactPeer, match="no exact timm peer for modality 'signal' yet: mmcore maps only image"):
        export_model(MaskedModel(toy_config("mae")), "timm", tmp_path / "x")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    with pytest.raises(DataError, match="already exists"):
        export_model(image_mae(), "timm", tmp_path / "taken")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


def test_text_export_says_why_not(tmp_path):
    model = image_mae()
    model.config = {**model.config, "modality": "text"}  # BERT export's checks (tests/test_interop_bert.py)
    with pytest.raises(NoExactPeer, match="no exact transformers peer for this text model: style 'mae'"):
        export_model(model, "transformers", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_class_token_and_norm_eps_defaults_leave_models_unchanged():
    plain = image_mae()
    assert "encoder.cls_token" not in plain.state_dict()
    assert plain.encoder.blocks[0].norm1.eps == 1e-6
    with_cls = image_mae(class_token=True, norm_eps=1e-12)
    x = images(with_cls)
    states, _ = with_cls.encode({"images": x})
    assert states.shape[1] == with_cls.tokenizer.tokenize({"images": x}).num_tokens  # the prefix is dropped
    assert with_cls.encoder.norm.eps == 1e-12
    out = with_cls({"images": x}, generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    assert with_cls.encoder.cls_token.grad is not None


def test_cli_export_and_import(tmp_path, capsys):
    model = image_mae()
    model.save_pretrained(tmp_path / "model")

    def run(*args):
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = run("export", str(tmp_path / "model"), "--to", "timm", "-o", str(tmp_path / "timm"))
    assert code == 0, err
    assert out.strip() == str(tmp_path / "timm") and "exact: max abs difference" in err
    code, out, err = run("import", str(tmp_path / "timm"), "--from", "timm", "-o", str(tmp_path / "back"))
    assert code == 0 and "note: decoder" in err
    code, out, err = run("import", str(tmp_path / "timm"), "--from", "transformers", "-o", str(tmp_path / "x"))
    assert code == 2 and err.startswith("mm: error: ") and "'vit_mae'" in err
    assert err.count("\n") == 1 and not (tmp_path / "x").exists()


# -- position tables (tokenizer.positions) -----------------------------------------


def test_positions_default_to_sincos_and_tables_start_equal():
    plain = image_mae()
    assert plain.config["tokenizer"]["positions"] == "sincos"  # config.json gains the option, with its default
    assert not any("pos_embed" in k for k in plain.state_dict())  # existing models keep their weights' keys
    x = images(plain)
    for positions in ("learned", "fixed"):
        model = image_mae(positions=positions)
        assert (model.encode({"images": x})[0] - plain.encode({"images": x})[0]).abs().max() == 0
        g = torch.Generator().manual_seed(0)
        assert model({"images": x}, generator=g).loss == plain({"images": x}, generator=torch.Generator().manual_seed(0)).loss
        params = {n for n, _ in model.named_parameters()}
        assert ("embedder.pos_embed" in params) == (positions == "learned")
        assert {"embedder.pos_embed", "embedder.decoder_pos_embed"} <= set(model.state_dict())
    with pytest.raises(ValueError, match=r"covers the trained grid \(4, 3\) only"):
        model.encode({"images": torch.rand(1, 3, 16, 24)})
    with pytest.raises(Exception, match="positions 'table' is invalid; accepted: sincos, learned, fixed"):
        image_mae(positions="table")


@pytest.mark.parametrize("no_embed_class", [False, True])
def test_import_timm_learned_positions_exactly_and_back(tmp_path, no_embed_class):
    peer = timm_vit(no_embed_class=no_embed_class)
    with torch.no_grad():
        peer.pos_embed.normal_()  # a learned table, the class token's own row too unless no_embed_class
    folder, diff, notes = import_model(saved(peer, tmp_path / "vit"), "timm", tmp_path / "mae")
    assert diff <= ATOL and any("learned positions" in n for n in notes)
    model = mmcore.from_pretrained(folder)
    assert model.config["tokenizer"]["positions"] == "learned"
    x = torch.rand(2, 3, 16, 24)
    mean, std = list(peer.pretrained_cfg["mean"]), list(peer.pretrained_cfg["std"])
    with torch.no_grad():
        theirs = peer.forward_features(normalised(x, mean, std))[:, 1:]
    assert (model.encode({"images": x})[0] - theirs).abs().max() <= ATOL
    out, diff = export_model(model, "timm", tmp_path / "again")  # the table goes back out as pos_embed
    again = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    with torch.no_grad():
        assert (again.forward_features(normalised(x, mean, std))[:, 1:] - theirs).abs().max() <= ATOL


# -- transformers ViTMAE -----------------------------------------------------------


def vitmae(**kwargs):
    """A tiny random ViTMAEForPreTraining, as save_pretrained writes it (its fixed position tables kept)."""
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    args = {
        "image_size": 32,
        "patch_size": 8,
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "decoder_hidden_size": 16,
        "decoder_num_hidden_layers": 1,
        "decoder_num_attention_heads": 2,
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


def test_import_vitmae_encoder_exactly_for_a_fixed_visible_set(tmp_path):
    pytest.importorskip("transformers")
    peer = vitmae()
    peer.save_pretrained(tmp_path / "hf")
    (tmp_path / "hf" / "preprocessor_config.json").write_text(
        json.dumps({"do_normalize": True, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]})
    )
    folder, diff, notes = import_model(tmp_path / "hf", "transformers", tmp_path / "mae")
    assert diff <= ATOL and any("class-token output" in n for n in notes)
    model = mmcore.from_pretrained(folder)
    c = model.config
    assert c["encoder"]["norm_eps"] == 1e-12 and c["encoder"]["class_token"] and c["target"]["norm_pix"]
    assert c["tokenizer"]["positions"] == "fixed" and c["tokenizer"]["std"] == [0.229, 0.224, 0.225]
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    noise = torch.rand(2, 16, generator=torch.Generator().manual_seed(3))  # fixes ViTMAE's mask
    keep = noise.argsort(dim=1)[:, :4]  # its visible patches, in its order (mask_ratio 0.75 of 16)
    with torch.no_grad():
        out = peer(pixel_values=normalised(x, c["tokenizer"]["mean"], c["tokenizer"]["std"]), noise=noise)
        theirs = peer.vit(pixel_values=normalised(x, c["tokenizer"]["mean"], c["tokenizer"]["std"]), noise=noise).last_hidden_state[:, 1:]
        embedded = model.embedder(model.tokenizer.tokenize({"images": x}))
        ours = model.encoder(embedded.gather(1, keep[..., None].expand(-1, -1, 32)))
    assert (ours - theirs).abs().max() <= ATOL
    hidden = out.mask.bool()  # the same mask through mmcore's MAE: it continues pretraining
    loss = model({"images": x}, hidden=hidden).loss
    assert torch.isfinite(loss) and "embedder.pos_embed" not in dict(model.named_parameters())


def test_vitmae_refusals_write_nothing(tmp_path):
    pytest.importorskip("transformers")
    vitmae(hidden_act="gelu_new").save_pretrained(tmp_path / "tanh")
    with pytest.raises(NoExactPeer, match="hidden_act 'gelu_new'; mmcore's MLP uses exact GELU") as info:
        import_model(tmp_path / "tanh", "transformers", tmp_path / "out")
    assert "\n" not in str(info.value)
    saved(timm_vit(), tmp_path / "vit")
    with pytest.raises(NoExactPeer, match="model_type None; mmcore imports transformers' ViTMAE only"):
        import_model(tmp_path / "vit", "transformers", tmp_path / "out")
    vitmae().save_pretrained(tmp_path / "cut")
    from safetensors.torch import load_file, save_file

    state = load_file(str(tmp_path / "cut" / "model.safetensors"))
    save_file(
        {k: v for k, v in state.items() if k != "vit.encoder.layer.1.output.dense.weight"},
        str(tmp_path / "cut" / "model.safetensors"),
        metadata={"format": "pt"},
    )
    with pytest.raises(DataError, match=r"do not match ViTMAEForPreTraining: missing \['vit.layers.1.mlp.fc2.weight'\]"):
        import_model(tmp_path / "cut", "transformers", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_known_peer_without_its_plugin_names_the_plugin(tmp_path, monkeypatch):
    """A BERT folder when mm-text is not installed: the plugin to install, not ViTMAE's refusal."""
    from mmcore.plugins import get_registry

    (tmp_path / "bert").mkdir()
    (tmp_path / "bert" / "config.json").write_text('{"model_type": "bert"}')
    monkeypatch.setitem(get_registry().items, "importers", {})
    with pytest.raises(NoExactPeer, match="imported by the mm-text plugin, which is not installed; pip install mm-text"):
        import_model(tmp_path / "bert", "transformers", tmp_path / "out")
    assert not (tmp_path / "out").exists()
