"""Protein ↔ transformers' EsmForMaskedLM (ESM-2 layout) with equal logits (mm_protein.hf_esm).

Tiny random ESM models built from EsmConfig (no download); every comparison is fp32, max abs ≤ 1e-5,
on padded batches holding <mask> (so ESM's token dropout rescaling is exercised)."""

import csv
import io
import json

import pytest
import torch

import mmcore
from mmcore.cli import main
from mmcore.config import check_model_config
from mmcore.errors import DataError
from mmcore.interop import NoExactPeer, export_model, import_model
from mmcore.model import MaskedModel, record_sources
from mmcore.testing import modality_checks

transformers = pytest.importorskip("transformers")
pytest.importorskip("mm_protein")
from transformers import AutoTokenizer, EsmConfig, EsmForMaskedLM  # noqa: E402

from mm_protein.alphabet import ID, TOKENS  # noqa: E402
from mm_protein.hf_esm import our_logits, peer_logits, random_sequences  # noqa: E402

ATOL = 1e-5
ESM2 = {
    "vocab_size": 33,
    "mask_token_id": 32,
    "pad_token_id": 1,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "position_embedding_type": "rotary",
    "token_dropout": True,
    "emb_layer_norm_before": False,
    "layer_norm_eps": 1e-5,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "max_position_embeddings": 66,
}


def esm(**kwargs):
    """A tiny random EsmForMaskedLM in ESM-2's layout; every weight drawn at a scale that makes logits differ."""
    torch.manual_seed(7)
    peer = EsmForMaskedLM(EsmConfig(**{**ESM2, **kwargs})).eval()
    with torch.no_grad():
        for p in peer.parameters():
            p.normal_(std=0.2)
    return peer


def saved(peer, folder):
    peer.save_pretrained(folder)
    return folder


def batch(seed=1, n=4):
    return random_sequences(66, n, seed)


def close(a, b, valid):
    return (a - b)[valid].abs().max().item()


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"token_dropout": False},
        {"emb_layer_norm_before": True},
        {"tie_word_embeddings": False, "rope_theta": 500.0, "layer_norm_eps": 1e-12},
    ],
    ids=["esm2", "no-token-dropout", "embedding-norm", "untied-theta-eps"],
)
def test_import_gives_equal_logits(tmp_path, kwargs):
    peer = esm(**kwargs)
    folder, diff, notes = import_model(saved(peer, tmp_path / "esm"), "transformers", tmp_path / "mm")
    assert diff <= ATOL and any("contact" in n for n in notes) and any("<cls>" in n for n in notes)
    model = mmcore.from_pretrained(folder)
    c = model.config
    assert c["modality"] == "protein" and c["style"] == "bert"
    assert c["encoder"]["rotary"] and c["encoder"]["rotary_base"] == peer.config.rope_theta
    assert c["encoder"]["norm_eps"] == c["tokenizer"]["norm_eps"] == peer.config.layer_norm_eps
    assert c["tokenizer"]["positions"] == "none" and c["tokenizer"]["ends"]
    assert c["tokenizer"]["token_dropout"] == peer.config.token_dropout
    assert c["tokenizer"]["embed_norm"] == bool(peer.config.emb_layer_norm_before)
    assert not any("positions" in k for k in model.state_dict())  # no table: rotary places the tokens
    ids, valid = batch()
    assert (ids == ID["<mask>"])[valid].any() and not valid.all()
    diff = close(our_logits(model, ids, valid), peer_logits(peer, ids, valid), valid)
    print(f"import {kwargs}: max abs logit difference {diff:.3g}")
    assert diff <= ATOL


def test_round_trip_export_loads_in_transformers_with_equal_logits(tmp_path):
    peer = esm()
    folder, _, _ = import_model(saved(peer, tmp_path / "esm"), "transformers", tmp_path / "mm")
    out, diff = export_model(folder, "transformers", tmp_path / "back")
    assert diff <= ATOL
    assert {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"} <= {p.name for p in out.iterdir()}
    again = EsmForMaskedLM.from_pretrained(out).eval()
    cfg = again.config
    assert cfg.tie_word_embeddings and cfg.position_embedding_type == "rotary" and cfg.token_dropout
    assert cfg.max_position_embeddings == peer.config.max_position_embeddings
    ids, valid = batch(seed=3)
    diff = close(peer_logits(again, ids, valid), peer_logits(peer, ids, valid), valid)
    print(f"ESM → mmcore → ESM: max abs logit difference {diff:.3g}")
    assert diff <= ATOL
    tokenizer = AutoTokenizer.from_pretrained(out)  # ESM's own tokenizer reads the folder: ids are mmcore's
    mm = mmcore.from_pretrained(folder).tokenizer
    assert tokenizer("MKTAYW<mask>K")["input_ids"] == mm.collate([{"sequence": "MKTAYW<mask>K"}])["ids"][0, :10].tolist()


def test_fine_tuned_untied_head_exports_untied(tmp_path):
    folder, _, _ = import_model(saved(esm(), tmp_path / "esm"), "transformers", tmp_path / "mm")
    model = mmcore.from_pretrained(folder)
    out = model(model.tokenizer.collate([{"sequence": "MKTAYIAKQRQISFVKSH"}] * 2), generator=torch.Generator().manual_seed(0))
    out.loss.backward()
    with torch.no_grad():  # one step of fine-tuning parts the head from the token embeddings
        for p in model.parameters():
            p -= 0.1 * p.grad
    out_dir, diff = export_model(model, "transformers", tmp_path / "tuned")
    assert diff <= ATOL
    again = EsmForMaskedLM.from_pretrained(out_dir).eval()
    assert not again.config.tie_word_embeddings
    ids, valid = batch(seed=4)
    assert close(our_logits(model, ids, valid), peer_logits(again, ids, valid), valid) <= ATOL


def esm_layout_config(**encoder):
    """An mmcore protein model built from scratch with the ESM-compatible options (not imported)."""
    config = {
        "modality": "protein",
        "style": "bert",
        "tokenizer": {"max_length": 64, "ends": True, "positions": "none", "embed_norm": False, "token_dropout": True, "norm_eps": 1e-5},
        "masking": {"name": "bert"},
        "target": {"name": "ids"},
        "encoder": {"dim": 32, "depth": 2, "heads": 4, "mlp_ratio": 3.0, "norm_eps": 1e-5, "rotary": True, **encoder},
        "decoder": {"dim": 16, "depth": 1, "heads": 2},
    }
    config.update(record_sources(config))
    return check_model_config(config, "test")


def test_export_a_model_trained_with_the_esm_options(tmp_path):
    torch.manual_seed(0)
    model = MaskedModel(esm_layout_config()).eval()
    out, diff = export_model(model, "transformers", tmp_path / "esm")
    peer = EsmForMaskedLM.from_pretrained(out).eval()
    assert peer.config.intermediate_size == 96 and peer.config.max_position_embeddings == 64
    ids, valid = random_sequences(64, 3, 9)
    diff = close(our_logits(model, ids, valid), peer_logits(peer, ids, valid), valid)
    print(f"mmcore (ESM options) → ESM: max abs logit difference {diff:.3g}")
    assert diff <= ATOL


# -- refusals: named, one line, nothing written --------------------------------------


def protein_model(**tokenizer):
    config = {
        "modality": "protein",
        "style": "bert",
        "tokenizer": {"max_length": 32, **tokenizer},
        "masking": {"name": "bert"},
        "target": {"name": "ids"},
        "encoder": {"dim": 32, "depth": 1, "heads": 2},
        "decoder": {"dim": 16, "depth": 1, "heads": 2},
    }
    config.update(record_sources(config))
    torch.manual_seed(0)
    return MaskedModel(check_model_config(config, "test")).eval()


def test_export_refuses_a_protein_model_without_the_esm_options(tmp_path):
    with pytest.raises(NoExactPeer, match=r"encoder.rotary is off.*tokenizer.positions is 'learned'") as info:
        export_model(protein_model(), "transformers", tmp_path / "x")
    assert "\n" not in str(info.value) and not (tmp_path / "x").exists()
    model = MaskedModel(esm_layout_config(norm_eps=1e-6)).eval()  # the tokenizer's norm_eps is 1e-5
    with pytest.raises(NoExactPeer, match="ESM has one layer_norm_eps"):
        export_model(model, "transformers", tmp_path / "x")
    mae = protein_model()
    mae.style = "mae"
    with pytest.raises(NoExactPeer, match="style 'mae'"):
        export_model(mae, "transformers", tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "kwargs, says",
    [
        ({"position_embedding_type": "absolute"}, "position_embedding_type 'absolute': learned positions"),
        ({"is_decoder": True}, "causal or cross attention"),
        ({"vocab_size": 35}, "vocab_size 35; mmcore's protein alphabet is ESM-2's"),
    ],
)
def test_import_refuses_what_mmcore_cannot_match_and_writes_nothing(tmp_path, kwargs, says):
    folder = saved(esm(**kwargs), tmp_path / "esm")
    with pytest.raises(NoExactPeer, match=says) as info:
        import_model(folder, "transformers", tmp_path / "out")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "out").exists() and [p.name for p in tmp_path.iterdir()] == ["esm"]


def test_import_refuses_another_vocabulary_and_missing_weights(tmp_path):
    folder = saved(esm(), tmp_path / "esm")
    (folder / "vocab.txt").write_text("\n".join(reversed(TOKENS)))
    with pytest.raises(NoExactPeer, match="vocabulary differs from ESM-2's alphabet from id 0"):
        import_model(folder, "transformers", tmp_path / "out")
    (folder / "vocab.txt").unlink()
    from safetensors.torch import load_file, save_file

    weights = folder / "model.safetensors"
    state = load_file(str(weights))
    save_file({k: v for k, v in state.items() if k != "esm.encoder.layer.1.output.dense.weight"}, str(weights), metadata={"format": "pt"})
    with pytest.raises(DataError, match=r"missing \['esm.encoder.layer.1.output.dense.weight'\]"):
        import_model(folder, "transformers", tmp_path / "out")
    weights.unlink()
    with pytest.raises(DataError, match="no model.safetensors"):
        import_model(folder, "transformers", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_rotary_is_refused_where_rows_are_not_positions():
    config = esm_layout_config()
    with pytest.raises(DataError, match="encoder.rotary: got true; accepted: false with the MAE style"):
        check_model_config({**config, "style": "mae"}, "test")
    with pytest.raises(DataError, match="even head width"):  # 36 / 4 = 9 channels a head: no pairs to turn
        check_model_config({**config, "encoder": {**config["encoder"], "dim": 36, "heads": 4}}, "test")
    with pytest.raises(DataError, match="rotary_base: got 1.0"):
        check_model_config({**config, "encoder": {**config["encoder"], "rotary_base": 1.0}}, "test")


# -- the options' defaults leave every model as it was -----------------------------------


def test_defaults_keep_protein_models_unchanged():
    """A default protein model: same weights' keys as before the ESM options, and outputs bit-identical
    to mmcore's plain discrete-token embedder and head holding the same weights."""
    from mmcore.discrete import TokenEmbedder, VocabHead

    model = protein_model()
    c = model.config
    assert not c["encoder"]["rotary"] and c["tokenizer"]["positions"] == "learned" and not c["tokenizer"]["ends"]
    keys = {k for k in model.state_dict() if k.startswith(("embedder.", "head."))}
    assert keys == {
        "embedder.tokens.weight",
        "embedder.positions.weight",
        "embedder.norm.weight",
        "embedder.norm.bias",
        "head.transform.0.weight",
        "head.transform.0.bias",
        "head.transform.2.weight",
        "head.transform.2.bias",
        "head.proj.weight",
        "head.proj.bias",
    }
    assert all(block.attn.rotary_base is None for block in model.encoder.blocks)
    plain_embedder = TokenEmbedder(model.tokenizer, 32, None)
    plain_embedder.load_state_dict(model.embedder.state_dict())
    plain_head = VocabHead(model.tokenizer, model.target, 32)
    plain_head.load_state_dict(model.head.state_dict())
    batch = model.tokenizer.collate([{"sequence": "MKTAYIAKQRQISF"}, {"sequence": "GSH<mask>LEDPV"}])
    assert batch["ids"][0, 0] == ID["M"] and "valid" in batch  # no <cls>: the ids as they were
    tokens = model.tokenizer.tokenize(batch)
    hidden = torch.zeros_like(tokens.values, dtype=torch.bool)
    hidden[:, 3] = True
    with torch.no_grad():
        x, y = model.embedder(tokens, hidden), plain_embedder(tokens, hidden)
        assert torch.equal(x, y)
        states = model.encoder(x, tokens.valid)
        assert torch.equal(model.head(states), plain_head(states))


def test_rotary_last_rows_equal_the_full_pass():
    """``keep_last`` (queries for the last rows only) places those rows by their own positions."""
    from mmcore.backbone import Transformer, TransformerConfig

    torch.manual_seed(0)
    net = Transformer(TransformerConfig(dim=32, depth=2, heads=4, rotary=True)).eval()
    x = torch.randn(2, 11, 32)
    valid = torch.arange(11)[None] < torch.tensor([[11], [8]])
    with torch.no_grad():
        full, last = net(x, valid), net(x, valid, keep_last=4)
        assert (full[:, -4:] - last).abs().max() <= 1e-6
        assert (net(x.flip(1), None)[:, 0] - net(x, None)[:, -1]).abs().max() > 1e-3  # order matters


SAMPLES = [
    {"sequence": s, "label": i % 2}
    for i, s in enumerate(["MKTAYIAKQRQISFVKSHFSRQ", "GSHMLEDPV", "MDKKYSIGLDIGTNSVGWAVITDEYKVPSKKFKVLGNTDRHSIKKNLIGALLFDS"])
]
ESM_TOKENIZER = {"max_length": 64, "ends": True, "positions": "none", "embed_norm": False, "token_dropout": True, "norm_eps": 1e-5}
ESM_DIMS = {
    "encoder": {"dim": 32, "depth": 1, "heads": 2, "mlp_ratio": 2.0, "norm_eps": 1e-5, "rotary": True},
    "decoder": {"dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0},
}


@pytest.mark.parametrize(
    "check", modality_checks("protein", SAMPLES, ESM_TOKENIZER, styles=("bert",), dims=ESM_DIMS, round_trip="ids"), ids=lambda c: c.name
)
def test_esm_options_pass_the_conformance_suite(check):
    check()  # padding invariance, position sensitivity (rotary alone places tokens), training, save/load ...


def test_ends_wrap_sequences_and_stay_out_of_prompts_and_renders():
    from mm_protein import ProteinTokenizer

    tok = ProteinTokenizer(max_length=8, ends=True)
    batch = tok.collate([{"sequence": "MKTAYIAKQR"}, {"sequence": "GS"}])
    assert batch["ids"][0].tolist() == [ID["<cls>"], *[ID[c] for c in "MKTAYI"], ID["<eos>"]]  # 6 residues fit
    assert batch["ids"][1, :4].tolist() == [ID["<cls>"], ID["G"], ID["S"], ID["<eos>"]]
    assert batch["valid"][1].tolist() == [True] * 4 + [False] * 4
    assert tok.render(batch["ids"][1, :4].tolist()) == "GS"
    with pytest.raises(DataError, match="at most 6 .*less <cls> and <eos>"):
        tok.parse_prompt("MKTAYIA")
    with pytest.raises(Exception, match="positions 'table' is invalid; accepted: learned, none"):
        ProteinTokenizer(positions="table")


# -- the imported model in use: mm score, mm fill, features -------------------------------


def test_mm_score_on_the_imported_model_gives_esms_marginals(tmp_path, capsys):
    peer = esm()
    folder, _, _ = import_model(saved(peer, tmp_path / "esm"), "transformers", tmp_path / "mm")
    wt = "MKTAYIAKQRQISFVKSH"
    assert main(["score", str(folder), "--wildtype", wt, "--mutations", "K2R,A4V,T3S:Y5F"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    ids = torch.tensor([[ID["<cls>"], *[ID[c] for c in wt], ID["<eos>"]]])  # as ESM's tokenizer reads wt
    valid = torch.ones_like(ids, dtype=torch.bool)
    logp = peer_logits(peer, ids, valid).log_softmax(-1)[0]
    masked = ids.clone()
    masked[0, 2] = ID["<mask>"]
    masked_logp = peer_logits(peer, masked, valid).log_softmax(-1)[0]
    expected_wt = float(logp[2, ID["R"]] - logp[2, ID["K"]])  # K2R: residue 2 is token 2 after <cls>
    expected_masked = float(masked_logp[2, ID["R"]] - masked_logp[2, ID["K"]])
    assert rows[0]["mutation"] == "K2R"
    assert abs(float(rows[0]["wt_marginal"]) - expected_wt) <= 1e-4
    assert abs(float(rows[0]["masked_marginal"]) - expected_masked) <= 1e-4


def test_fill_and_features_run_on_the_imported_model(tmp_path, capsys):
    folder, _, _ = import_model(saved(esm(), tmp_path / "esm"), "transformers", tmp_path / "mm")
    assert main(["fill", str(folder), "MKT<mask>AYIAK<mask>R", "--argmax"]) == 0
    filled = capsys.readouterr().out.strip()
    assert len(filled) == 11 and "<" not in filled and filled.startswith("MKT")
    model = mmcore.from_pretrained(folder)
    X = mmcore.features(model, [{"sequence": "MKTAYIAKQR"}, {"sequence": "GSHMLEDPVAAK"}])
    assert X.shape == (2, 32) and (X == X).all()


def test_cli_export_and_import(tmp_path, capsys):
    saved(esm(), tmp_path / "esm")

    def run(*args):
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = run("import", str(tmp_path / "esm"), "--from", "transformers", "-o", str(tmp_path / "mm"))
    assert code == 0 and out.strip() == str(tmp_path / "mm") and "exact: max abs difference" in err and "note:" in err
    code, out, err = run("export", str(tmp_path / "mm"), "--to", "transformers", "-o", str(tmp_path / "back"))
    assert code == 0 and "exact: max abs difference" in err
    assert json.loads((tmp_path / "back" / "config.json").read_text())["architectures"] == ["EsmForMaskedLM"]
    protein_model().save_pretrained(tmp_path / "plain")
    code, out, err = run("export", str(tmp_path / "plain"), "--to", "transformers", "-o", str(tmp_path / "x"))
    assert code == 2 and err.startswith("mm: error: ") and "encoder.rotary is off" in err
    assert err.count("\n") == 1 and not (tmp_path / "x").exists()
