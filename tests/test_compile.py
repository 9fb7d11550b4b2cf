"""A compile-clean step (#12 item 4): the part of a training forward that ``train.compile`` compiles
is one graph with no break, for every shipped modality.

`MaskedModel.forward` tokenizes and draws every random choice eagerly (`MaskedModel.draw`: the
mask, BERT's 80/10/10, a diffusion ratio), so the compiled `MaskedModel.step` receives no
``torch.Generator`` (each draw from one used to break the graph: 3 graphs per forward for the
MAE modalities, 7 for text and protein).
"""

import dataclasses
import math

import numpy as np
import pytest
import torch
import torch._dynamo
from torch._dynamo.utils import counters
from toy import joint_config, paired_samples, train_recipe

from mmcore.config import load_recipe, model_dict
from mmcore.model import MaskedModel

RECIPES = {
    "image": "image-mae-demo",
    "video": "video-mae",
    "audio": "audio-mae",
    "text": "text-mlm",
    "protein": "protein-mlm",
    "pointcloud": "pointcloud-mae",
    "tabular": "tabular-remask",
}
TINY = [
    "model.encoder.dim=32",
    "model.encoder.depth=1",
    "model.encoder.heads=2",
    "model.decoder.dim=16",
    "model.decoder.depth=1",
    "model.decoder.heads=2",
]
TEXTS = [
    "The cat sat on the mat.",
    "A dog ran across the garden and barked at the postman.",
    "Assignment statements bind names to values.",
    "Hello world",
]


def samples(modality):
    """A few raw samples of ``modality`` (lengths differ where they can: void tokens) and small tokenizer options."""
    g = torch.Generator().manual_seed(0)
    if modality == "image":
        return [{"image": torch.rand(1, 28, 28, generator=g), "label": i} for i in range(4)], {}
    if modality == "video":
        return (
            [{"video": torch.randint(0, 256, (1, 4, 16, 16), generator=g, dtype=torch.uint8), "label": i} for i in range(4)],
            {"num_frames": 4, "image_size": [16, 16], "tubelet_size": [2, 8, 8], "channels": 1},
        )
    if modality == "audio":
        return (
            [{"wave": torch.randn(n, generator=g) * 0.1, "label": 0} for n in (5000, 2500, 1200, 4000)],
            {"sample_rate": 16000, "num_mel_bins": 32, "target_frames": 32, "patch_size": [8, 8]},
        )
    if modality == "pointcloud":
        from mm_pointcloud import make_shape

        rng = np.random.default_rng(0)
        return (
            [{"points": make_shape(s, 80, rng, 0.01), "label": i} for i, s in enumerate(("sphere", "cube", "torus"))],
            {"num_points": 64, "num_groups": 8, "group_size": 8},
        )
    if modality == "tabular":
        from mm_tabular import Table, TableTokenizer
        from mm_tabular.data import TableRows

        rows = [["31", "Oslo", "1.5"], ["45", None, "2.0"], [None, "Lima", "3.25"], ["28", "Oslo", None], ["52", "Kyiv", "0.5"]]
        tokenizer = TableTokenizer()
        tokenizer.fit(TableRows(Table("t.csv", ["age", "city", "score"], rows), list(range(len(rows)))))
        return [{"cells": r} for r in rows[:4]], dataclasses.asdict(tokenizer)
    if modality == "text":
        from mm_text.vocab import train_tokenizer

        vocabulary = train_tokenizer(TEXTS, "wordpiece", 200, True).to_str()
        return [{"text": t, "label": 0} for t in TEXTS], {"train": None, "tokenizer_json": vocabulary, "max_length": 32}
    if modality == "protein":
        return [{"sequence": s} for s in ("MKTAYIAKQRQISFVKSHFSRQ", "GSHMLEDPV", "MDKKYSIGLDIGTNSVGWAVITDEYKVP")], {"max_length": 64}
    raise KeyError(modality)


def tiny_model(modality, overrides=()):
    """The modality's registered recipe with a tiny backbone, and a batch of its samples."""
    config = model_dict(load_recipe(RECIPES[modality], TINY + list(overrides)))
    items, tokenizer = samples(modality)
    config["tokenizer"].update(tokenizer)
    torch.manual_seed(0)
    model = MaskedModel(config)
    return model, model.tokenizer.collate(items)


def explain(fn, *args):
    torch._dynamo.reset()
    return torch._dynamo.explain(fn)(*args)


CASES = [
    *RECIPES,
    "text:model.masking.name=span",
    "text:model.masking.name=diffusion",
    "text:model.masking.name=diffusion:model.masking.per_sample=true",
    "text:model.style=mae:model.tokenizer.tie_embeddings=false",
    "image:model.masking.name=block",
    "image:model.style=bert:model.decoder_reads_class_token=false",
]


@pytest.mark.parametrize("case", CASES)
def test_the_compiled_training_step_is_one_graph(case):
    modality, *overrides = case.split(":")
    model, batch = tiny_model(modality, overrides)
    tokens = model.tokenizer.tokenize(batch)
    hidden, seen = model.draw(tokens, torch.Generator().manual_seed(0))
    out = explain(model.step, tokens, hidden, seen)
    assert (out.graph_count, out.graph_break_count) == (1, 0), [b.reason for b in out.break_reasons]
    eager = model(batch, generator=torch.Generator().manual_seed(0))  # forward = draw, then step
    assert torch.equal(eager.hidden, hidden) and torch.isfinite(eager.loss)


@pytest.mark.parametrize("style", ["mae", "bert"])
def test_the_compiled_joint_step_is_one_graph(toy_registry, style):
    from toy import WordPlugin

    from mmcore.joint import JointModel

    toy_registry.add_plugin(WordPlugin(), "word")
    model = JointModel(joint_config(style))
    tokens = model.tokenize(model.collate(paired_samples(6)))
    budgets = model.budgets(tokens, None)
    masks = model.draw_masks(tokens, budgets, torch.Generator().manual_seed(0))
    seen = model.corrupted(tokens, masks, budgets, torch.Generator().manual_seed(1))
    out = explain(model.step, tokens, masks, budgets, seen, None, frozenset())
    assert (out.graph_count, out.graph_break_count) == (1, 0), [b.reason for b in out.break_reasons]


@pytest.mark.parametrize("modality", ["text", "protein"])
def test_sequences_pad_to_a_multiple_of_8_up_to_max_length(modality):
    items, _ = samples(modality)
    model, _ = tiny_model(modality)
    tokenizer = model.tokenizer
    for k in range(1, len(items) + 1):
        batch = tokenizer.collate(items[:k])
        longest = int(batch["valid"].sum(1).max()) if "valid" in batch else batch["ids"].shape[1]
        assert batch["ids"].shape[1] == min(math.ceil(longest / 8) * 8, tokenizer.max_length)
    tokenizer.max_length = 13  # not a multiple of 8: the limit wins
    assert tokenizer.collate(items)["ids"].shape[1] == 13


def test_train_compile_trains_the_image_demo(tmp_path):
    """``train.compile=true`` on CPU: inductor compiles the step, nothing breaks the graph, the loss is finite.
    batch_size 8 = the picture batch, so training, evaluation and pictures share shapes (fewer compilations)."""
    counters.clear()
    torch._dynamo.reset()
    losses = train_recipe(
        "image-mae-demo",
        tmp_path / "run",
        overrides=[
            *TINY,
            "train.compile=true",
            "train.steps=3",
            "train.warmup_steps=1",
            "train.log_every=1",
            "train.trackers=[]",
            "data.batch_size=8",
            "data.eval_batches=1",
            "data.dataset.num_train=64",
        ],
    )
    assert sorted(losses) == [1, 2, 3] and all(math.isfinite(v) for v in losses.values()), losses
    assert counters["stats"]["unique_graphs"] >= 1, "train.compile compiled nothing"
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert (tmp_path / "run" / "model" / "model.safetensors").exists()
