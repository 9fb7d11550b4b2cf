"""TextFiles' and TextDemo's train/test splits are the ones drawn inline before mmcore.splits
(a torch permutation of the documents, seed 0, before chunking)."""

import torch

from mm_text import TextDemo, TextFiles, demo_paragraphs
from mm_text.files import Document, chunk_words


def old_split(docs, fraction, split, words):  # mm_text/data.py split_documents, before mmcore.splits
    order = torch.randperm(len(docs), generator=torch.Generator().manual_seed(0)).tolist()
    num_test = int(round(fraction * len(docs)))
    chosen = sorted(order[:num_test] if split == "test" else order[num_test:])
    return [piece for i in chosen for piece in chunk_words(docs[i], words)]


def test_text_demo_split_is_unchanged():
    demo = TextDemo(docstrings=False)  # the Language Reference alone: the corpus before docstrings joined
    docs = [Document(p, "pydoc_data/topics.py", i + 1) for i, p in enumerate(demo_paragraphs())]
    for split in ("train", "test"):
        assert demo.build(None, split).docs == old_split(docs, demo.test_fraction, split, demo.chunk_words)


def test_text_files_split_is_unchanged(tmp_path):
    for i in range(23):
        (tmp_path / f"{i:02}.txt").write_text(f"document {i} has a few words\n\nand paragraph {i} another few\n")
    dataset = TextFiles(path=str(tmp_path), test_fraction=0.2, chunk_words=3)
    docs = dataset.documents()
    assert len(docs) == 46
    for split in ("train", "test"):
        assert dataset.build(None, split).docs == old_split(docs, 0.2, split, 3)
