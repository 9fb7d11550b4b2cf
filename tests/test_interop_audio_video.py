"""Audio and video encoders ↔ timm's VisionTransformer (mmcore.interop.timm_vit's layouts), outputs equal;
tiny random models, no download."""

import json

import pytest
import torch

import mmcore
from mmcore.cli import main
from mmcore.config import check_model_config
from mmcore.errors import ConfigError
from mmcore.interop import NoExactPeer, export_model, import_model
from mmcore.model import MaskedModel, record_sources

timm = pytest.importorskip("timm")
pytest.importorskip("mm_audio")
pytest.importorskip("mm_video")

ATOL = 1e-5


def build(modality, tokenizer, masking, target, **encoder):
    config = {
        "modality": modality,
        "tokenizer": tokenizer,
        "masking": {"name": masking},
        "target": {"name": target},
        "encoder": {"dim": 32, "depth": 2, "heads": 2, **encoder},
        "decoder": {"dim": 16, "depth": 1, "heads": 2},
    }
    config.update(record_sources(config))
    torch.manual_seed(0)
    return MaskedModel(check_model_config(config, "test")).eval()


def audio_mae(patch_size=(8, 8), mean=-4.0, std=3.0, positions="sincos", **encoder):
    """32 frames × 16 mel bins, AudioMAE style."""
    tokenizer = {
        "num_mel_bins": 16,
        "target_frames": 32,
        "patch_size": list(patch_size),
        "mean": mean,
        "std": std,
        "sample_rate": 8000,
        "positions": positions,
    }
    return build("audio", tokenizer, "random", "fbank", **encoder)


def video_mae(tubelet_size=(4, 8, 8), mean=None, std=None, channels=3):
    tokenizer = {
        "num_frames": 4,
        "image_size": [16, 24],
        "tubelet_size": list(tubelet_size),
        "channels": channels,
        "mean": mean,
        "std": std,
    }
    return build("video", tokenizer, "tube", "pixels")


def spectrograms(n=3, seed=1):
    return torch.randn(n, 32, 16, generator=torch.Generator().manual_seed(seed)) * 3.0 - 4.0  # log-mel-like values


def clips(model, n=2, seed=1):
    tok = model.tokenizer
    return torch.rand(n, tok.channels, tok.num_frames, *tok.image_size, generator=torch.Generator().manual_seed(seed))


def timm_input(x, mean, std):
    """What a timm user feeds: a [B, C, H, W] tensor normalised per channel with pretrained_cfg's mean/std."""
    return (x - torch.tensor(mean).view(1, -1, 1, 1)) / torch.tensor(std).view(1, -1, 1, 1)


def local(folder):
    return timm.create_model(f"local-dir:{folder}", pretrained=True).eval()  # timm's own loader


# -- audio ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "patch_size, mean, std, class_token", [((8, 8), -4.0, 3.0, False), ((8, 4), None, None, True), ((4, 8), 2.0, None, False)]
)
def test_audio_export_to_timm_gives_equal_outputs(tmp_path, patch_size, mean, std, class_token):
    model = audio_mae(patch_size, mean, std, class_token=class_token)
    folder, diff = export_model(model, "timm", tmp_path / "timm")
    assert diff <= ATOL and sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    cfg_mean, cfg_std = config["pretrained_cfg"]["mean"], config["pretrained_cfg"]["std"]
    assert (cfg_mean, cfg_std) == ([mean or 0.0], [std if mean is not None and std else 1.0])  # mmcore's normalisation
    assert config["model_args"]["img_size"] == [32, 16] and config["model_args"]["patch_size"] == list(patch_size)
    assert config["model_args"]["in_chans"] == 1
    assert config["mmcore"]["modality"] == "audio" and config["mmcore"]["tokenizer"]["sample_rate"] == 8000
    peer = local(folder)
    x = spectrograms()
    with torch.no_grad():  # time is the height: fbank [B, T, F] → [B, 1, T, F]
        states = peer.forward_features(timm_input(x[:, None], cfg_mean, cfg_std))
        pooled = peer(timm_input(x[:, None], cfg_mean, cfg_std))
        ours, _ = model.encode({"fbank": x})
        features = model.features({"fbank": x})
    assert (states[:, peer.num_prefix_tokens :] - ours).abs().max() <= ATOL
    assert (pooled - features).abs().max() <= ATOL  # mmcore's features = timm's pooled output


def test_audio_padded_clips_match_with_timm_attention_mask(tmp_path):
    """A padded batch: mmcore leaves void patches out as attention keys; timm does the same given the mask."""
    model = audio_mae(class_token=True)
    folder, _ = export_model(model, "timm", tmp_path / "timm")
    peer = local(folder)
    x = spectrograms(n=2)
    batch = model.tokenizer.collate([{"fbank": x[0]}, {"fbank": x[1, :12]}])  # the second clip: 12 of 32 frames
    tokens = model.tokenizer.tokenize(batch)
    assert tokens.valid is not None and not tokens.valid.all()
    ours, valid = model.encode(batch)
    keys = torch.cat([torch.ones(2, 1, dtype=torch.bool), valid], dim=1)[:, None, None, :]  # class token first
    cfg = peer.pretrained_cfg
    with torch.no_grad():
        theirs = peer.forward_features(timm_input(batch["fbank"][:, None], cfg["mean"], cfg["std"]), attn_mask=keys)
    assert (theirs[:, 1:] - ours).abs().max() <= ATOL


def test_audio_round_trip_through_timm_keeps_outputs_and_settings(tmp_path):
    model = audio_mae((8, 4), class_token=True)
    exported, _ = export_model(model, "timm", tmp_path / "timm")
    back, diff, notes = import_model(exported, "timm", tmp_path / "back")
    assert diff <= ATOL and any("decoder" in n for n in notes) and any("time is the height" in n for n in notes)
    again = mmcore.from_pretrained(back)
    assert again.config["modality"] == "audio" and again.config["target"]["name"] == "fbank"
    assert again.config["tokenizer"] == model.config["tokenizer"]  # filterbank settings travel in the record
    x = spectrograms()
    assert (again.encode({"fbank": x})[0] - model.encode({"fbank": x})[0]).abs().max() <= ATOL
    out = again({"fbank": x}, generator=torch.Generator().manual_seed(0))  # it pretrains: an MAE loss
    assert torch.isfinite(out.loss)


def test_audio_positions_trained_in_timm_import_as_a_table_and_go_back_out(tmp_path):
    from safetensors.torch import load_file, save_file

    model = audio_mae()
    folder, _ = export_model(model, "timm", tmp_path / "timm")
    weights = folder / "model.safetensors"
    state = load_file(str(weights))
    state["pos_embed"] = state["pos_embed"] + 0.1 * torch.randn(state["pos_embed"].shape)  # trained on in timm
    save_file(state, str(weights))
    peer = local(folder)
    back, diff, notes = import_model(folder, "timm", tmp_path / "back")
    assert diff <= ATOL and any("learned positions" in n for n in notes)
    again = mmcore.from_pretrained(back)
    assert again.config["tokenizer"]["positions"] == "learned"
    x = spectrograms()
    cfg = peer.pretrained_cfg
    with torch.no_grad():
        theirs = peer.forward_features(timm_input(x[:, None], cfg["mean"], cfg["std"]))
    assert (again.encode({"fbank": x})[0] - theirs).abs().max() <= ATOL
    out, diff = export_model(again, "timm", tmp_path / "again")  # the table goes back out as pos_embed
    with torch.no_grad():
        assert (local(out).forward_features(timm_input(x[:, None], cfg["mean"], cfg["std"])) - theirs).abs().max() <= ATOL


def test_audio_positions_option_defaults_to_sincos_and_tables_start_equal():
    plain = audio_mae()
    assert plain.config["tokenizer"]["positions"] == "sincos" and not any("pos_embed" in k for k in plain.state_dict())
    x = spectrograms()
    for positions in ("learned", "fixed"):
        model = audio_mae(positions=positions)
        assert (model.encode({"fbank": x})[0] - plain.encode({"fbank": x})[0]).abs().max() == 0
        assert ("embedder.pos_embed" in dict(model.named_parameters())) == (positions == "learned")
    with pytest.raises(ConfigError, match="positions 'table' is invalid; accepted: sincos, learned, fixed"):
        audio_mae(positions="table")


def test_audio_import_refuses_a_peer_that_is_no_spectrogram_model(tmp_path):
    folder, _ = export_model(audio_mae(), "timm", tmp_path / "timm")
    record = json.loads((folder / "config.json").read_text())["mmcore"]
    peer = timm.create_model(
        "vit_base_patch16_224",
        pretrained=False,
        img_size=(32, 16),
        patch_size=8,
        in_chans=3,
        embed_dim=32,
        depth=1,
        num_heads=2,
        num_classes=0,
        global_pool="avg",
        fc_norm=False,
    )
    from timm.models import save_for_hf

    save_for_hf(peer, str(tmp_path / "rgb"), safe_serialization=True, model_config={"mmcore": record})
    with pytest.raises(NoExactPeer, match="audio encoder: 3 input channels; a spectrogram is one") as info:
        import_model(tmp_path / "rgb", "timm", tmp_path / "out")
    assert "\n" not in str(info.value) and not (tmp_path / "out").exists()


# -- video ---------------------------------------------------------------------------


@pytest.mark.parametrize("mean, std, channels", [([0.4, 0.5, 0.6], [0.2, 0.3, 0.25], 3), (None, None, 1)])
def test_video_whole_clip_tubelet_exact_both_ways(tmp_path, mean, std, channels):
    model = video_mae(mean=mean, std=std, channels=channels)
    folder, diff = export_model(model, "timm", tmp_path / "timm")
    assert diff <= ATOL
    config = json.loads((folder / "config.json").read_text())
    assert config["model_args"]["in_chans"] == 4 * channels and config["mmcore"]["modality"] == "video"
    repeated = [m for m in (mean or [0.0] * channels) for _ in range(4)]  # channel-major: each channel's T frames
    assert config["pretrained_cfg"]["mean"] == repeated
    peer = local(folder)
    x = clips(model)
    cfg = peer.pretrained_cfg
    with torch.no_grad():  # frames as channels: [B, C, T, H, W] → [B, C*T, H, W]
        theirs = peer.forward_features(timm_input(x.flatten(1, 2), cfg["mean"], cfg["std"]))
        ours, _ = model.encode({"clips": x})
        uint8, _ = model.encode({"clips": (x * 255).round().to(torch.uint8)})  # readers' uint8 clips: same layout
        theirs_uint8 = peer.forward_features(timm_input(((x * 255).round() / 255).flatten(1, 2), cfg["mean"], cfg["std"]))
    assert (theirs - ours).abs().max() <= ATOL and (theirs_uint8 - uint8).abs().max() <= ATOL
    back, diff, notes = import_model(folder, "timm", tmp_path / "back")
    assert diff <= ATOL and any("clip.flatten(1, 2)" in n for n in notes)
    again = mmcore.from_pretrained(back)
    assert again.config["tokenizer"] == model.config["tokenizer"] and again.config["masking"]["name"] == "tube"
    assert (again.encode({"clips": x})[0] - ours).abs().max() <= ATOL


def test_video_tubelets_split_in_time_are_refused_and_nothing_written(tmp_path):
    model = video_mae(tubelet_size=(2, 8, 8))
    with pytest.raises(
        NoExactPeer,
        match=r"tubelet_size \[2, 8, 8\] splits its 4 frames into 2 steps along time, "
        r"and timm's VisionTransformer has one 2-D patch grid",
    ) as info:
        export_model(model, "timm", tmp_path / "timm")
    assert "VideoMAEModel" in str(info.value) and "tubelet_size[0] = num_frames" in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(NoExactPeer, match="no exact transformers peer for modality 'video' yet: .*VideoMAEModel"):
        export_model(model, "transformers", tmp_path / "hf")
    with pytest.raises(NoExactPeer, match="no exact transformers peer for modality 'audio' yet: .*ASTModel"):
        export_model(audio_mae(), "transformers", tmp_path / "hf")
    assert list(tmp_path.iterdir()) == []


def test_video_import_refuses_what_the_tokenizer_cannot_hold(tmp_path):
    from safetensors.torch import load_file, save_file

    folder, _ = export_model(video_mae(), "timm", tmp_path / "timm")
    weights = folder / "model.safetensors"
    state = load_file(str(weights))
    state["pos_embed"] = state["pos_embed"] + 0.1  # a learned table: the video tokenizer has no table option
    save_file(state, str(weights))
    with pytest.raises(NoExactPeer, match="pos_embed is not mmcore's 3-D sin-cos"):
        import_model(folder, "timm", tmp_path / "out")
    config = json.loads((folder / "config.json").read_text())
    config["pretrained_cfg"]["mean"] = [0.1, 0.2, 0.3, 0.4] + [0.5] * 8  # frames of channel 0 differ
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(NoExactPeer, match="differ between the 4 frames of one channel"):
        import_model(folder, "timm", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["timm"]


def test_cli_audio_export_import_and_video_refusal(tmp_path, capsys):
    audio_mae().save_pretrained(tmp_path / "audio")
    video_mae(tubelet_size=(2, 8, 8)).save_pretrained(tmp_path / "video")

    def run(*args):
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = run("export", str(tmp_path / "audio"), "--to", "timm", "-o", str(tmp_path / "timm"))
    assert code == 0, err
    assert out.strip() == str(tmp_path / "timm") and "exact: max abs difference" in err
    code, out, err = run("import", str(tmp_path / "timm"), "--from", "timm", "-o", str(tmp_path / "back"))
    assert code == 0 and "note: input: mmcore's log-mel crop" in err
    assert mmcore.from_pretrained(tmp_path / "back").config["modality"] == "audio"
    code, out, err = run("export", str(tmp_path / "video"), "--to", "timm", "-o", str(tmp_path / "x"))
    assert code == 2 and err.startswith("mm: error: ") and "VideoMAEModel" in err
    assert err.count("\n") == 1 and not (tmp_path / "x").exists()
