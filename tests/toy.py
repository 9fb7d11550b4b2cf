"""A toy modality declared inside the test tree: variable-length 1-D signals.

It exercises every part of the contract without any plugin installed,
including void tokens (padding) and both backbone styles.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch
from torch import nn

from mmcore import Embedder, Head, Modality, Tokens, hookimpl
from mmcore.masking import hide_fraction_of_valid, hide_lowest, uniform_noise


@dataclass
class SignalTokenizer:
    max_length: int = 16
    scale: float | None = None  # fitted on the training split: largest |value|

    def fit(self, dataset):
        self.scale = float(max(s["signal"].abs().max() for s in dataset))

    def collate(self, samples):
        n = max(len(s["signal"]) for s in samples)
        values = torch.zeros(len(samples), n)
        valid = torch.zeros(len(samples), n, dtype=torch.bool)
        for i, s in enumerate(samples):
            values[i, : len(s["signal"])] = s["signal"]
            valid[i, : len(s["signal"])] = True
        batch = {"values": values, "labels": torch.tensor([s["label"] for s in samples])}
        if not valid.all():  # decided here on the CPU: tokenize must not read the device
            batch["valid"] = valid
        return batch

    def tokenize(self, batch):
        values = batch["values"][..., None] / (self.scale or 1.0)  # [B, N, 1]
        positions = torch.arange(values.shape[1], device=values.device)[None, :, None]
        return Tokens(values, positions, batch.get("valid"))

    def detokenize(self, values, tokens):
        return values[..., 0]

    def parse_prompt(self, text, name="prompt"):
        return {"signal": torch.tensor([float(v) for v in text.split(",")]), "label": -1}


class SignalEmbedder(Embedder):
    def __init__(self, tokenizer, dim, decoder_dim):
        super().__init__()
        self.value = nn.Linear(1, dim)
        self.bert_style = decoder_dim is None
        self.pos = nn.Embedding(tokenizer.max_length, dim)
        if decoder_dim is None:  # BERT style: a mask vector, no decoder
            self.mask = nn.Parameter(torch.zeros(dim))
        else:
            self.dec_pos = nn.Embedding(tokenizer.max_length, decoder_dim)

    def forward(self, tokens, hidden=None):
        x = self.value(tokens.values)
        if hidden is not None and self.bert_style:
            x = torch.where(hidden[..., None], self.mask.to(x.dtype), x)
        return x + self.pos(tokens.positions[..., 0])

    def decoder_positions(self, tokens):
        return self.dec_pos(tokens.positions[..., 0])


class SignalHead(Head):
    def __init__(self, tokenizer, target, dim):
        super().__init__()
        self.proj = nn.Linear(dim, target.dim(tokenizer))

    def forward(self, states):
        return self.proj(states)

    def loss(self, pred, target):
        return (pred.float() - target.float()).pow(2).mean(-1)


@dataclass
class Identity:
    def dim(self, tokenizer):
        return 1

    def __call__(self, tokens):
        return tokens.values

    def to_values(self, pred, tokens, index):
        return pred


@dataclass
class Scaled(Identity):
    """A target with an option, to switch away from in recipe tests."""

    factor: float = 2.0

    def __call__(self, tokens):
        return tokens.values * self.factor


@dataclass
class RandomFixed:
    ratio: float = 0.5

    def num_hidden(self, num_tokens):
        return int(round(self.ratio * num_tokens))

    def __call__(self, tokens, generator=None, scores=None):
        noise = uniform_noise((tokens.batch_size, tokens.num_tokens), tokens.values.device, generator)
        return hide_lowest(noise, self.num_hidden(tokens.num_tokens), tokens.valid)


@dataclass
class RandomOfValid:
    ratio: float = 0.5

    def num_hidden(self, num_tokens):
        return int(round(self.ratio * num_tokens))  # the budget hide_fraction_of_valid keeps routable

    def __call__(self, tokens, generator=None, scores=None):
        noise = uniform_noise((tokens.batch_size, tokens.num_tokens), tokens.values.device, generator)
        valid = tokens.valid if tokens.valid is not None else torch.ones_like(noise, dtype=torch.bool)
        return hide_fraction_of_valid(noise, self.ratio, valid)


@dataclass
class Waves:
    num_train: int = 64
    variable_length: bool = True

    def build(self, tokenizer, split):
        g = torch.Generator().manual_seed(0 if split == "train" else 1)
        n = self.num_train if split == "train" else 16
        items = []
        for i in range(n):
            length = int(torch.randint(4, tokenizer.max_length + 1, (1,), generator=g)) if self.variable_length else tokenizer.max_length
            freq = 1 + i % 3
            items.append({"signal": torch.sin(torch.arange(length) * 0.3 * freq), "label": i % 3})
        return items


@dataclass
class NoisyWaves(Waves):
    """Waves with fresh noise at every read, drawn from the *global* torch RNG, as a third-party dataset
    might: the executor must still make it resume exactly."""

    noise: float = 0.1

    def build(self, tokenizer, split):
        return NoisySamples(super().build(tokenizer, split), self.noise)


class NoisySamples(torch.utils.data.Dataset):
    def __init__(self, items, noise):
        self.items, self.noise = items, noise

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        item = dict(self.items[i])
        item["signal"] = item["signal"] + self.noise * torch.randn(item["signal"].shape)
        return item


class ToyPlugin:
    """Registered directly with ``Registry.add_plugin`` in tests."""

    @hookimpl
    def register_modalities(self, register):
        register(
            Modality(
                name="signal",
                tokenizer=SignalTokenizer,
                embedder=SignalEmbedder,
                head=SignalHead,
                default_policy="random",
                default_target="identity",
                style="mae",
            )
        )

    @hookimpl
    def register_masking_policies(self, register):
        register("signal", "random", RandomFixed)
        register("signal", "random_of_valid", RandomOfValid)

    @hookimpl
    def register_targets(self, register):
        register("signal", "identity", Identity)
        register("signal", "scaled", Scaled)

    @hookimpl
    def register_datasets(self, register):
        register("signal", "waves", Waves)
        register("signal", "noisy_waves", NoisyWaves)


def toy_config(style="mae", policy="random", ratio=0.5):
    return {
        "modality": "signal",
        "style": style,
        "tokenizer": {"max_length": 16},
        "masking": {"name": policy, "ratio": ratio},
        "target": {"name": "identity"},
        "encoder": {"dim": 32, "depth": 2, "heads": 4, "mlp_ratio": 2.0},
        "decoder": {"dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0},
    }


# -- a second toy modality, discrete, for joint (multimodal) models ------------------------


@dataclass
class WordTokenizer:
    """A sample's label as two ids (a "word" of two word-pieces): ids 4 + label and 8 + label."""

    max_length: int = 4
    vocab_size: int = 16
    mask_id: int = 1

    def collate(self, samples):
        return {"ids": torch.tensor([s["ids"] if "ids" in s else [4 + s["label"], 8 + s["label"]] for s in samples])}

    def parse_prompt(self, text, name="prompt"):
        return {"label": int(text)}

    def placeholder(self, length=None):
        return {"ids": [self.mask_id, self.mask_id]}

    def render(self, ids, name=None):
        return " ".join(map(str, ids))

    def tokenize(self, batch):
        ids = batch["ids"]
        positions = torch.arange(ids.shape[1], device=ids.device)[None, :, None]
        meta = {"mask_id": self.mask_id, "random_ids": (4, self.vocab_size), "generate_ids": (4, self.vocab_size)}
        return Tokens(ids, positions, None, meta)

    def detokenize(self, values, tokens):
        return values


class WordPlugin:
    """The ``word`` modality, built from the core's discrete parts."""

    @hookimpl
    def register_modalities(self, register):
        from mmcore.discrete import TokenEmbedder, VocabHead

        register(
            Modality(
                name="word",
                tokenizer=WordTokenizer,
                embedder=TokenEmbedder,
                head=VocabHead,
                default_policy="bert",
                default_target="ids",
                style="bert",
            )
        )

    @hookimpl
    def register_masking_policies(self, register):
        from mmcore.discrete import BertMasking

        register("word", "bert", BertMasking)

    @hookimpl
    def register_targets(self, register):
        from mmcore.discrete import TokenIdTarget

        register("word", "ids", TokenIdTarget)

    @hookimpl
    def register_datasets(self, register):
        register("word", "labels", WordLabels)


@dataclass
class WordLabels:
    """One word per label 0, 1, 2, ``per_label`` times (pairs with `Waves` by label)."""

    per_label: int = 4

    def build(self, tokenizer, split):
        return [{"label": label} for label in range(3) for _ in range(self.per_label)]


def paired_samples(n=12, seed=0, variable_length=True):
    """{signal, word} pairs that share a label: the signal's frequency says which word it is."""
    items = Waves(num_train=n, variable_length=variable_length).build(SignalTokenizer(), "train")
    return [{"signal": item, "word": {"label": item["label"]}} for item in items]


def joint_config(style="mae", hide_one_prob=0.0):
    return {
        "modalities": {
            "signal": {
                "tokenizer": {"max_length": 16},
                "masking": {"name": "random_of_valid", "ratio": 0.5},
                "target": {"name": "identity"},
            },
            "word": {"masking": {"name": "bert", "ratio": 0.5}, "target": {"name": "ids"}},
        },
        "style": style,
        "hide_one_prob": hide_one_prob,
        "encoder": {"dim": 32, "depth": 2, "heads": 4, "mlp_ratio": 2.0},
        "decoder": {"dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0},
    }


TOY_RECIPE = """
name: toy
model:
  modality: signal
  masking: {name: random, ratio: 0.5}
  encoder: {dim: 32, depth: 2, heads: 4}
  decoder: {dim: 16, depth: 1, heads: 2}
data:
  dataset: {name: waves, num_train: 48}
  batch_size: 8
train:
  steps: 8
  warmup_steps: 2
  base_lr: 0.01
  log_every: 1
  checkpoint_every: 3
  keep_checkpoints: 2
  trackers: []
"""


class Killed(Exception):
    """Raised from ``on_step`` to stop a run in-process after a given step, as a kill would."""


def train_recipe(recipe, out, resume=False, overwrite=False, kill_at=None, overrides=(), **options):
    """Train ``recipe`` into ``out`` in this process; returns {step: loss}. ``options``: more
    ``key=value`` overrides written as keywords (``**{"train.grad_accum": 2}``)."""
    from mmcore.config import load_recipe
    from mmcore.executor import train

    losses = {}

    def on_step(step, loss):
        losses[step] = loss
        if step == kill_at:
            raise Killed(step)

    cfg = load_recipe(recipe, [f"output_dir={out}", *overrides, *(f"{k}={v}" for k, v in options.items())])
    try:
        train(cfg, resume=resume, overwrite=overwrite, on_step=on_step)
    except Killed:
        pass
    return losses


def sampler_stub(calls: list, head, mask_id: int, vocab_size: int):
    """A BERT-style stand-in for the samplers of mmcore.sampling: embeds each token as its position
    (so ``head`` decides the logits from where a token is) and records the hidden mask of every call."""

    def embed(tokens, hidden):
        calls.append(hidden.clone())
        return tokens.positions.float().expand(tokens.values.shape[0], -1, -1).repeat(1, 1, 4)

    def tokenize(batch):
        positions = torch.arange(batch["ids"].shape[1])[None, :, None]
        return Tokens(batch["ids"], positions, batch.get("valid"), {"mask_id": mask_id, "generate_ids": (1, mask_id)})

    tokenizer = SimpleNamespace(vocab_size=vocab_size, tokenize=tokenize)
    return SimpleNamespace(style="bert", tokenizer=tokenizer, embedder=embed, encoder=lambda x, valid: x, head=head, eval=lambda: None)
