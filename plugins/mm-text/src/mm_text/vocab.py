"""Hugging Face `tokenizers` vocabularies: load one from disk, or learn one from a corpus.

A loaded or trained tokenizer is kept as its JSON string, which the text
tokenizer stores in ``config.json``: a model folder restores it with no file
outside the folder.
"""

from __future__ import annotations

from pathlib import Path
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
from tokenizers.implementations import BertWordPieceTokenizer

from mmcore.errors import ConfigError, DataError

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
KINDS = ("wordpiece", "bpe")
ACCEPTED = "a tokenizer.json file, or a folder holding tokenizer.json or a BERT vocab.txt"


def load_tokenizer(path: str, lowercase: bool = True) -> Tokenizer:
    """A `Tokenizer` from a tokenizer.json file or a folder (tokenizer.json, else vocab.txt)."""
    p = Path(path).expanduser()
    if p.is_dir():
        if (p / "tokenizer.json").is_file():
            p = p / "tokenizer.json"
        elif (p / "vocab.txt").is_file():
            return _from_vocab_txt(p / "vocab.txt", lowercase)
        else:
            raise DataError(f"tokenizer folder {p} holds neither tokenizer.json nor vocab.txt; accepted: {ACCEPTED}")
    if not p.is_file():
        raise DataError(f"tokenizer {p} does not exist; accepted: {ACCEPTED}")
    if p.name.endswith(".txt"):
        return _from_vocab_txt(p, lowercase)
    try:
        tok = Tokenizer.from_file(str(p))
    except Exception as exc:  # tokenizers raises a bare Exception on malformed JSON
        raise DataError(f"cannot read tokenizer {p}: {exc}; accepted: {ACCEPTED}") from None
    return plain(tok)


def _from_vocab_txt(path: Path, lowercase: bool) -> Tokenizer:
    try:
        return plain(BertWordPieceTokenizer(str(path), lowercase=lowercase)._tokenizer)
    except Exception as exc:
        raise DataError(f"cannot read WordPiece vocabulary {path}: {exc}; accepted: one token per line (BERT vocab.txt)") from None


def plain(tok: Tokenizer) -> Tokenizer:
    """No truncation or padding: the mmcore tokenizer crops and pads itself."""
    tok.no_truncation()
    tok.no_padding()
    return tok


def train_tokenizer(texts: Iterable[str], kind: str, vocab_size: int, lowercase: bool) -> Tokenizer:
    """Learn a WordPiece (BERT) or byte-level BPE (GPT-2/RoBERTa) vocabulary from ``texts``."""
    if kind == "wordpiece":
        tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        tok.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False)
    elif kind == "bpe":
        tok = Tokenizer(models.BPE(unk_token="[UNK]"))
        steps = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
        tok.normalizer = normalizers.Sequence(steps)
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size, special_tokens=SPECIALS, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        )
    else:
        raise ConfigError(f"model.tokenizer.train {kind!r} is unknown; accepted: {', '.join(KINDS)}")
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def special_ids(tok: Tokenizer) -> dict[str, int | list[int]]:
    """mask, pad and all special ids of ``tok``; a vocabulary without a mask token cannot be used."""
    vocab = tok.get_vocab()
    found = {}
    for role, names in (("mask", ("[MASK]", "<mask>")), ("pad", ("[PAD]", "<pad>")), ("unk", ("[UNK]", "<unk>"))):
        found[role] = next((vocab[n] for n in names if n in vocab), None)
    if found["mask"] is None:
        raise ConfigError("the tokenizer has no mask token; accepted: a vocabulary holding [MASK] or <mask>")
    specials = sorted({i for i, t in tok.get_added_tokens_decoder().items() if t.special} | {found["mask"]})
    return {"mask": found["mask"], "pad": found["pad"] if found["pad"] is not None else found["mask"], "specials": specials}
