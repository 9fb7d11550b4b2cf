"""Text models ↔ transformers' BertForMaskedLM (mm_text.hf_bert) with equal logits; tiny random peers,
a vocab.txt written here, no download."""

import json

import pytest
import torch

import mmcore
from mmcore.backbone import Transformer, TransformerConfig
from mmcore.cli import main
from mmcore.config import check_model_config
from mmcore.errors import DataError
from mmcore.interop import NoExactPeer, export_model, import_model
from mmcore.model import MaskedModel, record_sources

transformers = pytest.importorskip("transformers")
pytest.importorskip("mm_text")
from mm_text.hf_bert import mmcore_logits, peer_logits, random_ids  # noqa: E402

ATOL = 1e-5
WORDS = ["the", "cat", "sat", "on", "mat", "dog", "ran", "##s", "##ed", "a", "garden", "and", "barked", ".", ","]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *(f"w{i}" for i in range(40 - 5 - len(WORDS)))]


def bert(folder, seed=0, **overrides):
    """A tiny random BertForMaskedLM saved with its vocab.txt (token-type rows random too, so the fold shows)."""
    torch.manual_seed(seed)
    args = {
        "vocab_size": len(VOCAB),
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 64,
        "max_position_embeddings": 24,
        "pad_token_id": 0,
        **overrides,
    }
    peer = transformers.BertForMaskedLM(transformers.BertConfig(**args)).eval()
    with torch.no_grad():
        for name, p in peer.named_parameters():  # far from init: unit norms and zero biases would hide mistakes
            p.normal_(mean=1.0 if "LayerNorm.weight" in name else 0.0, std=0.3)
    peer.save_pretrained(str(folder))
    (folder / "vocab.txt").write_text("".join(w + "\n" for w in VOCAB), encoding="utf-8")
    return peer


def text_model(norm_placement="post", eps=1e-12, seed=0, **encoder):
    tokenizer = {"path": None, "tokenizer_json": bert_vocab_json(), "max_length": 24, "norm_eps": eps}
    config = {
        "modality": "text",
        "style": "bert",
        "tokenizer": tokenizer,
        "masking": {"name": "bert"},
        "target": {"name": "ids"},
        "decoder": {"dim": 16, "depth": 1, "heads": 2},
        "encoder": {"dim": 32, "depth": 2, "heads": 4, "mlp_ratio": 2.0, "norm_eps": eps, "norm_placement": norm_placement, **encoder},
    }
    config.update(record_sources(config))
    torch.manual_seed(seed)
    model = MaskedModel(check_model_config(config, "test")).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(
                mean=1.0
                if name.endswith("norm.weight") or "norm1.weight" in name or "norm2.weight" in name or name == "head.transform.2.weight"
                else 0.0,
                std=0.3,
            )
    return model


def bert_vocab_json():
    from tokenizers.implementations import BertWordPieceTokenizer

    return BertWordPieceTokenizer({w: i for i, w in enumerate(VOCAB)}, lowercase=True)._tokenizer.to_str()


def max_diff(model, peer, seed=0):
    ids, valid = random_ids(model, batch=3, seed=seed)
    return (mmcore_logits(model, ids, valid) - peer_logits(peer, ids, valid))[valid].abs().max().item()


def test_import_bert_gives_equal_logits_and_exports_back(tmp_path):
    peer = bert(tmp_path / "bert", type_vocab_size=2)
    folder, diff, notes = import_model(tmp_path / "bert", "transformers", tmp_path / "mm")
    assert diff <= ATOL and any("token type 0 folded" in n for n in notes)
    model = mmcore.from_pretrained(folder)
    assert model.config["encoder"]["norm_placement"] == "post" and model.config["tokenizer"]["norm_eps"] == 1e-12
    assert "encoder.norm.weight" not in model.state_dict()  # post-norm: BERT has no final norm
    print("import max abs logit difference", max_diff(model, peer, seed=1))
    assert max_diff(model, peer, seed=1) <= ATOL  # a padded batch, other ids than the command's check
    tok = model.tokenizer  # the vocabulary is the folder's vocab.txt, ids unchanged
    assert tok.vocab_size == len(VOCAB) and tok.mask_id == VOCAB.index("[MASK]") and tok.pad_id == 0
    assert tok.encode(["the cats barked."])[0].ids == [VOCAB.index(w) for w in ("the", "cat", "##s", "barked", ".")]
    out = model(
        tok.collate([{"text": "the cat sat on the mat."}, {"text": "a dog ran."}]), generator=torch.Generator().manual_seed(0)
    )  # it trains on as any mmcore text model
    assert torch.isfinite(out.loss)

    exported, diff = export_model(folder, "transformers", tmp_path / "hf")
    assert diff <= ATOL
    cfg = json.loads((exported / "config.json").read_text())
    assert cfg["model_type"] == "bert" and not cfg["tie_word_embeddings"]  # word rows hold token type 0 now
    again = transformers.BertForMaskedLM.from_pretrained(str(exported)).eval()  # transformers' own loader
    print("export max abs logit difference", max_diff(model, again, seed=2))
    assert max_diff(model, again, seed=2) <= ATOL
    ids, valid = random_ids(model, batch=3, seed=3)
    assert (peer_logits(again, ids, valid) - peer_logits(peer, ids, valid))[valid].abs().max() <= ATOL
    fast = transformers.AutoTokenizer.from_pretrained(str(exported))  # the vocabulary goes out with it
    assert fast("the cats barked.", add_special_tokens=False)["input_ids"] == tok.encode(["the cats barked."])[0].ids
    assert (exported / "vocab.txt").read_text().split("\n")[:5] == VOCAB[:5]


def test_export_native_text_model_and_back(tmp_path):
    model = text_model()  # untied head: its own output matrix, as mmcore trains it
    folder, diff = export_model(model, "transformers", tmp_path / "hf")
    assert diff <= ATOL
    assert {"config.json", "model.safetensors", "tokenizer.json", "vocab.txt"} <= {p.name for p in folder.iterdir()}
    cfg = json.loads((folder / "config.json").read_text())
    assert not cfg["tie_word_embeddings"] and cfg["layer_norm_eps"] == 1e-12 and cfg["hidden_act"] == "gelu"
    peer = transformers.BertForMaskedLM.from_pretrained(str(folder)).eval()
    print("export (untied) max abs logit difference", max_diff(model, peer, seed=4))
    assert max_diff(model, peer, seed=4) <= ATOL
    token_types = torch.ones(1, 5, dtype=torch.long)  # exported token-type rows are zeros: any type adds nothing
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        assert torch.equal(peer(input_ids=ids, token_type_ids=token_types).logits, peer(input_ids=ids).logits)
    back, diff, _ = import_model(folder, "transformers", tmp_path / "back")
    again = mmcore.from_pretrained(back)
    ids, valid = random_ids(model, batch=3, seed=5)
    assert diff <= ATOL and (mmcore_logits(again, ids, valid) - mmcore_logits(model, ids, valid))[valid].abs().max() <= ATOL


def test_export_ties_an_output_matrix_equal_to_the_word_table(tmp_path):
    model = text_model(seed=1)
    with torch.no_grad():
        model.head.proj.weight.copy_(model.embedder.tokens.weight)
    folder, diff = export_model(model, "transformers", tmp_path / "hf")
    assert diff <= ATOL and json.loads((folder / "config.json").read_text())["tie_word_embeddings"]
    peer = transformers.BertForMaskedLM.from_pretrained(str(folder)).eval()
    assert peer.cls.predictions.decoder.weight is peer.bert.embeddings.word_embeddings.weight
    assert max_diff(model, peer, seed=6) <= ATOL


def test_import_bert_for_pretraining_leaves_out_next_sentence_head(tmp_path):
    torch.manual_seed(1)
    peer = transformers.BertForPreTraining(
        transformers.BertConfig(
            vocab_size=len(VOCAB),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=24,
        )
    ).eval()
    peer.save_pretrained(str(tmp_path / "bert"))
    (tmp_path / "bert" / "vocab.txt").write_text("".join(w + "\n" for w in VOCAB), encoding="utf-8")
    folder, diff, notes = import_model(tmp_path / "bert", "transformers", tmp_path / "mm")
    assert diff <= ATOL and any("cls.seq_relationship" in n and "bert.pooler" in n for n in notes)
    mlm = transformers.BertForMaskedLM.from_pretrained(str(tmp_path / "bert")).eval()
    assert max_diff(mmcore.from_pretrained(folder), mlm) <= ATOL


@pytest.mark.parametrize(
    "override, says",
    [
        ({"hidden_act": "gelu_new"}, "hidden_act 'gelu_new'"),
        ({"hidden_act": "relu"}, "hidden_act 'relu'"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type 'relative_key'"),
        ({"is_decoder": True}, "is_decoder"),
        ({"architectures": ["BertModel"]}, "no masked-LM head"),
    ],
)
def test_import_refuses_what_differs_and_writes_nothing(tmp_path, override, says):
    bert(tmp_path / "bert")
    path = tmp_path / "bert" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **override}))  # as an older transformers wrote it
    with pytest.raises(NoExactPeer, match=says) as info:
        import_model(tmp_path / "bert", "transformers", tmp_path / "out")
    assert "\n" not in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bert"]


def test_import_refuses_missing_vocabulary_and_pickles(tmp_path):
    bert(tmp_path / "bert")
    (tmp_path / "bert" / "vocab.txt").write_text("".join(w + "\n" for w in VOCAB[:-1]))
    with pytest.raises(DataError, match=f"holds {len(VOCAB) - 1} tokens, the model's embeddings {len(VOCAB)} rows"):
        import_model(tmp_path / "bert", "transformers", tmp_path / "out")
    (tmp_path / "bert" / "vocab.txt").unlink()
    with pytest.raises(DataError, match="no vocab.txt or tokenizer.json"):
        import_model(tmp_path / "bert", "transformers", tmp_path / "out")
    (tmp_path / "bert" / "model.safetensors").rename(tmp_path / "bert" / "pytorch_model.bin")
    with pytest.raises(DataError, match="no model.safetensors"):
        import_model(tmp_path / "bert", "transformers", tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bert"]


@pytest.mark.parametrize(
    "kwargs, says",
    [
        ({"norm_placement": "pre", "eps": 1e-6}, "encoder.norm_placement is 'pre'"),
        ({"class_token": True}, "class_token"),
        ({"eps": 1e-6, "norm_eps": 1e-12}, "tokenizer.norm_eps 1e-06"),
    ],
)
def test_export_refuses_text_models_without_the_options(tmp_path, kwargs, says):
    with pytest.raises(NoExactPeer, match=says) as info:
        export_model(text_model(**kwargs), "transformers", tmp_path / "x")
    assert "\n" not in str(info.value) and not (tmp_path / "x").exists()


def test_cli_import_and_export(tmp_path, capsys):
    bert(tmp_path / "bert")

    def run(*args):
        code = main(list(args))
        out, err = capsys.readouterr()
        return code, out, err

    code, out, err = run("import", str(tmp_path / "bert"), "--from", "transformers", "-o", str(tmp_path / "mm"))
    assert code == 0, err
    assert out.strip() == str(tmp_path / "mm") and "exact: max abs difference" in err and "note: token type" in err
    code, out, err = run("export", str(tmp_path / "mm"), "--to", "transformers", "-o", str(tmp_path / "hf"))
    assert code == 0, err
    code, out, err = run("export", str(tmp_path / "mm"), "--to", "timm", "-o", str(tmp_path / "timm"))
    assert code == 2 and "modality 'text'" in err and not (tmp_path / "timm").exists()


# -- the options' defaults ----------------------------------------------------------


def test_post_norm_blocks_are_berts_and_keep_last_rows():
    torch.manual_seed(0)
    enc = Transformer(TransformerConfig(dim=16, depth=2, heads=2, norm_placement="post")).eval()
    x, valid = torch.randn(2, 7, 16), torch.tensor([[True] * 7, [True] * 5 + [False] * 2])
    full = enc(x, valid)
    y = x
    mask = valid[:, None, None, :]
    for b in enc.blocks:  # x = LN(x + attn(x)); x = LN(x + mlp(x)); no final norm
        y = b.norm1(y + b.attn(y, mask))
        y = b.norm2(y + b.mlp(y))
    assert (full - y).abs().max() <= 1e-6
    assert (enc(x, valid, keep_last=3) - full[:, -3:]).abs().max() <= 1e-6  # the last-rows path agrees
    assert isinstance(enc.norm, torch.nn.Identity) and not any(k.startswith("norm.") for k in enc.state_dict())
    cfg = TransformerConfig(dim=16, depth=2, heads=2, norm_placement="post")
    assert cfg.num_params() == sum(p.numel() for p in enc.parameters())


def test_defaults_leave_text_models_unchanged():
    torch.manual_seed(0)
    pre = Transformer(TransformerConfig(dim=16, depth=2, heads=2))
    assert "norm.weight" in pre.state_dict() and not any(b.post for b in pre.blocks)
    model = text_model(norm_placement="pre", eps=1e-6)
    assert model.embedder.norm.eps == 1e-6 and model.head.transform[2].eps == 1e-6
    config = dict(model.config)
    config["tokenizer"] = {k: v for k, v in config["tokenizer"].items() if k != "norm_eps"}  # an older config.json
    config["encoder"] = {k: v for k, v in config["encoder"].items() if k != "norm_placement"}
    older = MaskedModel(check_model_config(config, "older"))
    assert set(older.state_dict()) == set(model.state_dict())
    assert older.embedder.norm.eps == 1e-6 and older.encoder.config.norm_placement == "pre"
    with pytest.raises(DataError, match="norm_placement: got 'sandwich'; accepted: one of pre, post"):
        check_model_config({**config, "encoder": {**config["encoder"], "norm_placement": "sandwich"}}, "bad")
