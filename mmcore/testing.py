"""A conformance suite for modality plugins, in the manner of scikit-learn's
``check_estimator``: every plugin runs the same checks against the contract.

In a plugin's tests::

    from mmcore.testing import modality_checks

    @pytest.mark.parametrize("check", modality_checks("image", samples), ids=lambda c: c.name)
    def test_conformance(check):
        check()

``samples`` is a list of raw items the modality's tokenizer collates (a few
is enough). Each check has a name usable with ``pytest -k``; known failures
can be listed in ``expected_failed={"check_name": "reason"}`` and are skipped
with that reason.

For fuzzing a file reader with damaged real files, ``fuzz_settings()``,
``corrupted(data)`` and ``no_hang(seconds)`` (the end of this module)::

    @fuzz_settings()
    @given(corrupted(original))
    def run(data):
        path.write_bytes(data)
        with no_hang():
            ...  # read ``path``: a valid sample, or a DataError naming the file
"""

from __future__ import annotations

import faulthandler
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch

from mmcore.model import MaskedModel
from mmcore.plugins import get_registry

TINY = {
    "encoder": {"dim": 32, "depth": 1, "heads": 2, "mlp_ratio": 2.0},
    "decoder": {"dim": 16, "depth": 1, "heads": 2, "mlp_ratio": 2.0},
}


@dataclass
class Check:
    name: str
    run: Callable[[], None]
    skip_reason: str | None = None

    def __call__(self) -> None:
        if self.skip_reason is not None:
            import pytest

            pytest.skip(self.skip_reason)
        self.run()


def tiny_config(modality: str, policy: str, target: str | None = None, style: str | None = None,
                tokenizer: dict[str, Any] | None = None, dims: dict[str, Any] | None = None) -> dict[str, Any]:
    mod = get_registry().modality(modality)
    return {"modality": modality, "style": style or mod.style, "tokenizer": tokenizer or {},
            "masking": {"name": policy}, "target": {"name": target or mod.default_target}, **(dims or TINY)}


def modality_checks(modality: str, samples: list[Any], tokenizer: dict[str, Any] | None = None,
                    styles: tuple[str, ...] | None = None, dims: dict[str, Any] | None = None,
                    expected_failed: dict[str, str] | None = None) -> list[Check]:
    """Every check for every masking policy and style of ``modality``."""
    registry = get_registry()
    styles = styles or (registry.modality(modality).style,)
    checks: list[Check] = []
    for policy in registry.names("policies", modality):
        checks += [
            Check(f"check_mask_count_{policy}", lambda p=policy: check_mask_count(modality, p, samples, tokenizer)),
            Check(f"check_mask_deterministic_{policy}", lambda p=policy: check_mask_deterministic(modality, p, samples, tokenizer)),
            Check(f"check_mask_ratio_zero_{policy}", lambda p=policy: check_mask_ratio_zero(modality, p, samples, tokenizer)),
        ]
    default_policy = registry.modality(modality).default_policy
    for style in styles:
        for target in registry.names("targets", modality):
            cfg = lambda t=target, s=style: tiny_config(modality, default_policy, t, s, tokenizer, dims)
            checks += [
                Check(f"check_train_step_{style}_{target}", lambda c=cfg: check_train_step(c(), samples)),
                Check(f"check_save_load_{style}_{target}", lambda c=cfg: check_save_load(c(), samples)),
            ]
    checks.append(Check("check_features_and_picture", lambda: check_features_and_picture(
        tiny_config(modality, default_policy, None, None, tokenizer, dims), samples)))
    for check in checks:
        if expected_failed and check.name in expected_failed:
            check.skip_reason = expected_failed[check.name]
    return checks


def _tokens(modality: str, policy_name: str, samples, tokenizer, **policy_options):
    registry = get_registry()
    tok = registry.modality(modality).tokenizer(**(tokenizer or {}))
    policy = registry.policy(modality, policy_name)(**policy_options)
    return tok.tokenize(tok.collate(samples)), policy


def check_mask_count(modality, policy_name, samples, tokenizer=None) -> None:
    tokens, policy = _tokens(modality, policy_name, samples, tokenizer)
    hidden = policy(tokens, torch.Generator().manual_seed(0))
    assert hidden.shape == (tokens.batch_size, tokens.num_tokens) and hidden.dtype == torch.bool, \
        f"{policy_name}: mask must be [B, N] bool, got {tuple(hidden.shape)} {hidden.dtype}"
    budget = policy.num_hidden(tokens.num_tokens)
    counts = hidden.sum(1)
    if tokens.valid is None:
        assert (counts == budget).all(), f"{policy_name}: expected exactly {budget} hidden per sample, got {counts.tolist()}"
    else:
        assert (counts <= budget).all(), f"{policy_name}: more hidden than num_hidden {budget}: {counts.tolist()}"
    if getattr(policy, "fixed_budget", True):  # the MAE routing rule of mmcore.contract
        valid = tokens.valid if tokens.valid is not None else torch.ones_like(hidden)
        visible = (~hidden & valid).sum(1)
        assert (visible <= tokens.num_tokens - budget).all(), (
            f"{policy_name}: leaves {visible.tolist()} valid tokens visible, more than the encoder's "
            f"N - num_hidden = {tokens.num_tokens - budget} slots (MAE style would drop visible tokens)")


def check_mask_deterministic(modality, policy_name, samples, tokenizer=None) -> None:
    tokens, policy = _tokens(modality, policy_name, samples, tokenizer)
    a = policy(tokens, torch.Generator().manual_seed(1))
    b = policy(tokens, torch.Generator().manual_seed(1))
    assert torch.equal(a, b), f"{policy_name}: the same generator seed gave different masks"
    if policy.num_hidden(tokens.num_tokens) not in (0, tokens.num_tokens):
        masks = [policy(tokens, torch.Generator().manual_seed(s)) for s in range(2, 6)]
        assert any(not torch.equal(a, m) for m in masks), f"{policy_name}: different seeds always gave the same mask"


def check_mask_ratio_zero(modality, policy_name, samples, tokenizer=None) -> None:
    tokens, policy = _tokens(modality, policy_name, samples, tokenizer, ratio=0.0)
    assert policy.num_hidden(tokens.num_tokens) == 0 and not policy(tokens, torch.Generator().manual_seed(0)).any(), \
        f"{policy_name}: ratio 0 must hide nothing"


def check_train_step(config, samples) -> None:
    torch.manual_seed(0)
    model = MaskedModel(config)
    out = model(model.tokenizer.collate(samples), generator=torch.Generator().manual_seed(0))
    K = model.policy.num_hidden(out.hidden.shape[1])
    assert out.pred.shape[:2] == (len(samples), K), f"head output {tuple(out.pred.shape)}, expected [B={len(samples)}, K={K}, ...]"
    assert out.token_loss.shape == (len(samples), K) and out.token_loss.dtype == torch.float32, "head.loss must give [B, K] float32"
    assert torch.isfinite(out.loss), f"loss is {out.loss}"
    out.loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient for {name} (DDP rejects parameters that get none)"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient for {name}"


def check_save_load(config, samples) -> None:
    model = MaskedModel(config).eval()
    batch = model.tokenizer.collate(samples)
    hidden = model.policy(model.tokenizer.tokenize(batch), torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        loaded = MaskedModel.from_pretrained(folder)
    assert torch.equal(model(batch, hidden=hidden).pred, loaded(batch, hidden=hidden).pred), "outputs differ after save/load"


def check_features_and_picture(config, samples) -> None:
    model = MaskedModel(config).eval()
    batch = model.tokenizer.collate(samples)
    feats = model.features(batch)
    if model.modality.pool is None:  # the default pooling keeps the encoder width
        assert feats.shape == (len(samples), config["encoder"]["dim"])
    assert feats.ndim == 2 and feats.shape[0] == len(samples) and torch.isfinite(feats).all()
    original, masked, recon = model.reconstruct(batch, torch.Generator().manual_seed(0))
    assert original.shape == recon.shape == masked.shape and original.shape[0] == len(samples)
    if model.modality.picture is not None:
        image = model.modality.picture(original, masked, recon)
        assert image.size[0] > 0 and image.size[1] > 0


# Fuzzing files. hypothesis is a test-only dependency, so it is imported inside these functions:
# ``import mmcore.testing`` (the conformance checks above) keeps working without it.


def fuzz_settings(max_examples: int | None = None):
    """hypothesis settings for fuzzing a reader: ``MM_FUZZ_EXAMPLES`` examples (60 by default; a
    benchmark run uses 1000), no deadline, derandomized (the same cases every run, no example
    database) and every health check suppressed (file I/O is slow; a test's fixtures are reused)."""
    from hypothesis import HealthCheck, settings

    if max_examples is None:
        max_examples = int(os.environ.get("MM_FUZZ_EXAMPLES", "60"))
    return settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def corrupted(data: bytes, header: int = 256):
    """A hypothesis strategy for ``data`` after 1-3 edits: cut at an offset, 1-8 bytes flipped, 1-32
    junk bytes inserted, or 1-32 bytes written over. Offsets fall in the first ``header`` bytes half
    the time, where formats keep their magic numbers, sizes and counts."""
    from hypothesis import strategies as st

    @st.composite
    def strategy(draw) -> bytes:
        out = bytearray(data)

        def offset() -> int:
            return draw(st.one_of(st.integers(0, header - 1), st.integers(0, max(0, len(out) - 1))))

        for _ in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from(["truncate", "flip", "insert", "overwrite"]))
            if kind == "truncate":
                del out[offset():]
            elif kind == "flip":
                for _ in range(draw(st.integers(1, 8)) if out else 0):
                    out[offset() % len(out)] ^= draw(st.integers(1, 255))
            else:
                at, junk = offset(), draw(st.binary(min_size=1, max_size=32))
                out[at:at + (len(junk) if kind == "overwrite" else 0)] = junk
        return bytes(out)

    return strategy()


@contextmanager
def no_hang(seconds: float = 60) -> Iterator[None]:
    """Fail a read that takes over ``seconds``: a decoder stuck in C cannot be interrupted, so dump
    every thread's stack and exit the run instead."""
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()
