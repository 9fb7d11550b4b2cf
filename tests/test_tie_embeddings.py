"""``model.tokenizer.tie_embeddings``: the vocabulary head's output matrix is the token table (BERT, ESM).
Tiny models: stored once, loaded with equal logits, trained and resumed, counted as BERT and ESM count."""

import pytest
import torch

import mmcore
from mmcore.config import check_model_config
from mmcore.errors import ConfigError
from mmcore.executor import param_groups
from mmcore.model import MaskedModel, record_sources

pytest.importorskip("mm_text")
pytest.importorskip("mm_protein")
transformers = pytest.importorskip("transformers")

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *(f"w{i}" for i in range(35))]
D, DEPTH, HEADS, LENGTH = 32, 2, 4, 24


def vocab_json():
    from tokenizers.implementations import BertWordPieceTokenizer

    return BertWordPieceTokenizer({w: i for i, w in enumerate(VOCAB)}, lowercase=True)._tokenizer.to_str()


def text_model(tie=True, style="bert", **encoder):
    config = {
        "modality": "text",
        "style": style,
        "masking": {"name": "bert"},
        "target": {"name": "ids"},
        "tokenizer": {"tokenizer_json": vocab_json(), "max_length": LENGTH, "tie_embeddings": tie},
        "encoder": {"dim": D, "depth": DEPTH, "heads": HEADS, "mlp_ratio": 4.0, **encoder},
        "decoder": {"dim": 16, "depth": 1, "heads": 2},
    }
    config.update(record_sources(config))
    torch.manual_seed(0)
    return MaskedModel(check_model_config(config, "test"))


def batch():
    ids = torch.randint(5, len(VOCAB), (3, LENGTH), generator=torch.Generator().manual_seed(1))
    return {"ids": ids, "valid": torch.ones_like(ids, dtype=torch.bool), "word_ids": torch.arange(LENGTH).expand(3, -1)}


def count(model):
    return sum(p.numel() for p in model.parameters())


def test_tied_model_stores_the_matrix_once_and_loads_with_equal_logits(tmp_path):
    model = text_model().eval()
    assert model.head.proj.weight is model.embedder.tokens.weight
    assert "head.proj.weight" not in model.state_dict() and "head.proj.bias" in model.state_dict()
    assert "head.proj.weight" in text_model(tie=False).state_dict()  # the default is unchanged
    model.save_pretrained(tmp_path / "m")
    loaded = mmcore.from_pretrained(str(tmp_path / "m"))
    assert loaded.head.proj.weight is loaded.embedder.tokens.weight
    hidden = torch.zeros(3, LENGTH, dtype=torch.bool)
    hidden[:, 3] = True
    with torch.no_grad():
        a = model(batch(), hidden=hidden).pred
        b = loaded(batch(), hidden=hidden).pred
    assert torch.equal(a, b)


def test_tied_model_trains_one_step_and_stays_tied():
    model = text_model().train()
    names = [n for n, _ in model.named_parameters()]
    assert "head.proj.weight" not in names and names.count("embedder.tokens.weight") == 1
    optimizer = torch.optim.AdamW(param_groups(model, 0.01), lr=1e-2)
    before = model.embedder.tokens.weight.detach().clone()
    model(batch(), generator=torch.Generator().manual_seed(0)).loss.backward()
    optimizer.step()
    assert model.head.proj.weight is model.embedder.tokens.weight
    assert not torch.equal(before, model.embedder.tokens.weight)


def test_parameter_counts_are_berts_and_esms():
    from transformers import BertConfig, BertForMaskedLM, EsmConfig, EsmForMaskedLM

    bert = BertForMaskedLM(
        BertConfig(
            vocab_size=len(VOCAB),
            hidden_size=D,
            num_hidden_layers=DEPTH,
            num_attention_heads=HEADS,
            intermediate_size=4 * D,
            max_position_embeddings=LENGTH,
            type_vocab_size=2,
        )
    )
    tied, untied = text_model(norm_placement="post"), text_model(tie=False, norm_placement="post")
    assert count(tied) == count(bert) - 2 * D  # BERT's only extra: its token-type table
    assert count(untied) == count(tied) + len(VOCAB) * D
    esm = EsmForMaskedLM(
        EsmConfig(
            vocab_size=33,
            hidden_size=D,
            num_hidden_layers=DEPTH,
            num_attention_heads=HEADS,
            intermediate_size=4 * D,
            max_position_embeddings=LENGTH + 2,
            pad_token_id=1,
            mask_token_id=32,
            position_embedding_type="rotary",
            emb_layer_norm_before=False,
        )
    )
    config = {
        "modality": "protein",
        "style": "bert",
        "masking": {"name": "bert"},
        "target": {"name": "ids"},
        "tokenizer": {"max_length": LENGTH, "positions": "none", "embed_norm": False, "tie_embeddings": True},
        "encoder": {"dim": D, "depth": DEPTH, "heads": HEADS, "mlp_ratio": 4.0, "rotary": True},
        "decoder": {"dim": 16, "depth": 1, "heads": 2},
    }
    protein = MaskedModel(check_model_config(config, "test"))
    contact_head = DEPTH * HEADS + 1  # ESM's contact regression: no mmcore counterpart
    assert count(protein) == count(esm) - contact_head


def test_tied_text_model_exports_tied_to_bert():
    from mm_text.hf_bert import logits_difference, to_bert

    model = text_model(norm_placement="post", norm_eps=1e-12)
    model.tokenizer.norm_eps = 1e-12
    for module in (model.embedder.norm, model.head.transform[2]):
        module.eps = 1e-12
    peer = to_bert(model)
    assert peer.config.tie_word_embeddings
    assert logits_difference(model, peer) < 1e-4


def test_tying_needs_the_bert_style():
    with pytest.raises(ConfigError, match="tie_embeddings"):
        text_model(style="mae")


def test_tied_protein_run_resumes_exactly(tmp_path):
    from toy import train_recipe

    options = {
        "model.tokenizer.max_length": 32,
        "model.tokenizer.tie_embeddings": "true",
        "model.encoder.dim": 16,
        "model.encoder.depth": 1,
        "model.encoder.heads": 2,
        "data.batch_size": 4,
        "data.eval_batches": 1,
        "train.steps": 4,
        "train.checkpoint_every": 2,
        "train.log_every": 1,
        "train.warmup_steps": 1,
        "train.trackers": "[]",
    }
    full = train_recipe("protein-mlm", tmp_path / "full", **options)
    train_recipe("protein-mlm", tmp_path / "cut", kill_at=3, **options)
    resumed = train_recipe("protein-mlm", tmp_path / "cut", resume=True, **options)
    assert sorted(resumed) == [3, 4]
    for step in resumed:
        assert resumed[step] == pytest.approx(full[step], rel=1e-6, abs=1e-7)
    model = mmcore.from_pretrained(str(tmp_path / "cut" / "model"))
    assert model.head.proj.weight is model.embedder.tokens.weight
