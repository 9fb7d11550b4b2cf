"""A conformance suite for modality plugins, in the manner of scikit-learn's
``check_estimator``: every plugin runs the same checks against the contract.

In a plugin's tests::

    from mmcore.testing import modality_checks

    @pytest.mark.parametrize("check", modality_checks("image", samples), ids=lambda c: c.name)
    def test_conformance(check):
        check()

``samples`` is a list of raw items the modality's tokenizer collates (a few
is enough; samples of different lengths exercise void tokens). A lossless
tokenizer names the batch key ``detokenize`` gives back (``round_trip="images"``).
Each check has a name usable with ``pytest -k``; known failures can be listed
in ``expected_failed={"check_name": "reason"}`` and are skipped with that reason.

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
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

from mmcore.contract import Tokens
from mmcore.model import MaskedModel, structure_of
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


def tiny_config(
    modality: str,
    policy: str,
    target: str | None = None,
    style: str | None = None,
    tokenizer: dict[str, Any] | None = None,
    dims: dict[str, Any] | None = None,
) -> dict[str, Any]:
    mod = get_registry().modality(modality)
    return {
        "modality": modality,
        "style": style or mod.style,
        "tokenizer": tokenizer or {},
        "masking": {"name": policy},
        "target": {"name": target or mod.default_target},
        **(dims or TINY),
    }


def modality_checks(
    modality: str,
    samples: list[Any],
    tokenizer: dict[str, Any] | None = None,
    styles: tuple[str, ...] | None = None,
    dims: dict[str, Any] | None = None,
    expected_failed: dict[str, str] | None = None,
    round_trip: str | None = None,
    atol: float = 1e-5,
) -> list[Check]:
    """Every check for every masking policy and style of ``modality``.

    ``round_trip``: the batch key whose tensor ``detokenize`` gives back, for a lossless tokenizer
    (None for a lossy one: then only "detokenize reads its values" is checked). ``atol``: the
    tolerance of the round trip and of padding invariance (float32 rounding).
    """
    registry = get_registry()
    styles = styles or (registry.modality(modality).style,)
    checks: list[Check] = []
    for policy in registry.names("policies", modality):
        checks += [
            Check(f"check_mask_count_{policy}", lambda p=policy: check_mask_count(modality, p, samples, tokenizer)),
            Check(f"check_mask_deterministic_{policy}", lambda p=policy: check_mask_deterministic(modality, p, samples, tokenizer)),
            Check(f"check_mask_ratio_zero_{policy}", lambda p=policy: check_mask_ratio_zero(modality, p, samples, tokenizer)),
            Check(
                f"check_routing_{policy}",
                lambda p=policy: check_routing([tiny_config(modality, p, None, s, tokenizer, dims) for s in styles], samples),
            ),
        ]
    default_policy = registry.modality(modality).default_policy
    config = lambda style=None: tiny_config(modality, default_policy, None, style, tokenizer, dims)
    for style in styles:
        for target in registry.names("targets", modality):
            cfg = lambda t=target, s=style: tiny_config(modality, default_policy, t, s, tokenizer, dims)
            checks += [
                Check(f"check_train_step_{style}_{target}", lambda c=cfg: check_train_step(c(), samples)),
                Check(f"check_save_load_{style}_{target}", lambda c=cfg: check_save_load(c(), samples)),
            ]
        checks.append(Check(f"check_no_host_sync_{style}", lambda s=style: check_no_host_sync(config(s), samples)))
    checks += [
        Check("check_features_and_picture", lambda: check_features_and_picture(config(), samples)),
        Check("check_round_trip", lambda: check_round_trip(modality, samples, tokenizer, round_trip, atol)),
        Check("check_padding_at_end", lambda: check_padding_at_end(modality, samples, tokenizer)),
        Check("check_padding_invariance", lambda: check_padding_invariance(config(), samples, atol)),
        Check("check_position_sensitivity", lambda: check_position_sensitivity(config(), samples)),
    ]
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
    assert hidden.shape == (tokens.batch_size, tokens.num_tokens) and hidden.dtype == torch.bool, (
        f"{policy_name}: mask must be [B, N] bool, got {tuple(hidden.shape)} {hidden.dtype}"
    )
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
            f"N - num_hidden = {tokens.num_tokens - budget} slots (MAE style would drop visible tokens)"
        )


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
    assert policy.num_hidden(tokens.num_tokens) == 0 and not policy(tokens, torch.Generator().manual_seed(0)).any(), (
        f"{policy_name}: ratio 0 must hide nothing"
    )


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


def check_routing(configs: list[dict[str, Any]], samples) -> None:
    """What the model makes of the policy's masks, per style: every scored slot holds a hidden valid
    token and every hidden valid token is scored (hidden ⊆ valid; void tokens the policy hides as
    filler, as the contract allows, are never scored); in MAE style no visible valid token sits in a
    predicted slot, i.e. none is dropped from the encoder (the routing rule of `mmcore.contract`)."""
    for config in configs:
        policy = get_registry().policy(config["modality"], config["masking"]["name"])
        if config["style"] == "mae" and not getattr(policy, "fixed_budget", True):
            continue  # MAE style refuses it (`mmcore.model.check_routable`): nothing to route
        model = MaskedModel(config)
        with torch.no_grad():
            out = model(model.tokenizer.collate(samples), generator=torch.Generator().manual_seed(0))
        valid = out.tokens.valid if out.tokens.valid is not None else torch.ones_like(out.hidden)
        hidden, visible = out.hidden & valid, ~out.hidden & valid
        scored = out.weight > 0  # [B, K] per predicted slot; out.index says which token sits there
        name = f"{config['masking']['name']} ({config['style']} style)"
        assert torch.equal(hidden.gather(1, out.index), scored), f"{name}: a scored slot holds a void or visible token"
        lost = hidden.sum(1) - scored.sum(1)
        assert (lost == 0).all(), f"{name}: {lost.tolist()} hidden valid tokens per sample are never scored"
        if config["style"] == "mae":
            dropped = visible.gather(1, out.index).sum(1)
            assert (dropped == 0).all(), (
                f"{name}: {dropped.tolist()} visible valid tokens per sample are dropped "
                "from the encoder (more than N - num_hidden visible)"
            )


def check_round_trip(modality, samples, tokenizer=None, key: str | None = None, atol: float = 1e-5) -> None:
    """``detokenize`` reads the token values (one returning a constant fails); with ``key`` (a lossless
    tokenizer) tokenizing its output again gives the same values at valid tokens, compared in the
    tokenizer's own space so that uint8 pixels, normalisation and padding need no special case."""
    tok = get_registry().modality(modality).tokenizer(**(tokenizer or {}))
    batch = tok.collate(samples)
    tokens = tok.tokenize(batch)
    out = tok.detokenize(tokens.values, tokens)
    assert out.shape[0] == tokens.batch_size, f"detokenize gave {tuple(out.shape)}, expected batch-first"
    moved = tok.detokenize(tokens.values + 1, tokens)
    assert not torch.allclose(out.float(), moved.float(), rtol=0, atol=0, equal_nan=True), "detokenize ignores the token values"
    if key is None:
        return
    again = tok.tokenize({**batch, key: out}).values
    err = (again.float() - tokens.values.float()).abs()[_valid(tokens)]
    assert err.max() <= atol + atol * tokens.values.float().abs().max(), (
        f"tokenize(detokenize(tokens)) differs from the tokens by up to {err.max():.3g} at valid tokens "
        f"(batch key {key!r}); a lossy tokenizer passes round_trip=None"
    )


def check_padding_at_end(modality, samples, tokenizer=None) -> None:
    """Void padding goes after a sample's own tokens: token j of a sample collated alone is token j of
    it in any batch, and the tokens a batch adds to it are void."""
    tok = get_registry().modality(modality).tokenizer(**(tokenizer or {}))
    batch = tok.tokenize(tok.collate(samples))
    for i, sample in enumerate(samples):
        alone = tok.tokenize(tok.collate([sample]))
        n = alone.num_tokens
        assert n <= batch.num_tokens, f"sample {i} has {n} tokens alone, more than the batch's {batch.num_tokens}"
        assert torch.equal(_valid(batch)[i, :n], _valid(alone)[0]), (
            f"sample {i}: its valid tokens alone are not the first {n} of its row in a batch (padding at the front?)"
        )
        assert not _valid(batch)[i, n:].any(), f"sample {i}: the tokens a batch adds after its {n} must be void"


def check_padding_invariance(config, samples, atol: float = 1e-5) -> None:
    """Void tokens change no valid token's encoder output: each sample alone and in a padded batch
    (eval mode). For a tokenizer that never makes void tokens (images) this checks only that a
    sample's outputs do not depend on its batch-mates."""
    model = MaskedModel(config).eval()
    tok = model.tokenizer
    states, valid = _encode(model, tok.tokenize(tok.collate(samples)))
    for i, sample in enumerate(samples):
        alone = tok.tokenize(tok.collate([sample]))
        mine, mine_valid = _encode(model, alone)
        a, b = mine[0][mine_valid[0]], states[i][valid[i]]
        assert a.shape == b.shape, f"sample {i}: {len(a)} valid tokens alone, {len(b)} in a batch"
        err = (a - b).abs().max()
        assert err <= atol, f"sample {i}: padding changes its valid tokens' encoder outputs by up to {err:.3g}"


def check_position_sensitivity(config, samples) -> None:
    """Moving token values to other places changes the outputs: the encoder is permutation-equivariant,
    so without positions the outputs would only move along with the values."""
    model = MaskedModel(config).eval()
    tokens = model.tokenizer.tokenize(model.tokenizer.collate(samples))
    valid = _valid(tokens)
    perm = torch.arange(tokens.num_tokens).repeat(tokens.batch_size, 1)  # [B, N] a cyclic shift of valid tokens
    for row in range(tokens.batch_size):
        places = valid[row].nonzero().flatten()
        perm[row, places] = places.roll(-1)
    values = tokens.values.gather(1, perm.view(*perm.shape, *[1] * (tokens.values.dim() - 2)).expand_as(tokens.values))
    states, _ = _encode(model, tokens)
    moved, _ = _encode(model, replace(tokens, values=values))
    err = (moved - states.gather(1, perm[..., None].expand_as(states))).abs()[valid]
    assert err.max() > 1e-3, "permuting the token values permutes the outputs alike: positions are ignored or constant"


def _valid(tokens: Tokens) -> Tensor:
    return tokens.valid if tokens.valid is not None else torch.ones(tokens.values.shape[:2], dtype=torch.bool, device=tokens.values.device)


@torch.no_grad()
def _encode(model: MaskedModel, tokens: Tokens) -> tuple[Tensor, Tensor]:
    """Encoder states [B, N, D] of all tokens (none hidden) and their valid mask, as `MaskedModel.encode`."""
    x = model.encoder(model.embedder(tokens), tokens.valid, structure=structure_of(model.embedder, tokens, None))
    return x, _valid(tokens)


# The tensor calls that wait for the device: a value read back to the host, or an output whose shape
# depends on values (nonzero, boolean indexing). ``cpu``/``numpy`` copy to the host.
SYNCING = frozenset(
    {
        "item",
        "tolist",
        "numpy",
        "cpu",
        "__bool__",
        "__int__",
        "__float__",
        "__index__",
        "nonzero",
        "argwhere",
        "unique",
        "unique_consecutive",
        "masked_select",
        "bincount",
    }
)


class HostSyncGuard(TorchFunctionMode):
    """torch has no CPU sync mode, so this raises on the calls that would sync a GPU (`SYNCING`, a
    boolean-mask index, one-argument ``where``), naming the caller's line."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        index = args[1] if name in ("__getitem__", "__setitem__") and len(args) > 1 else None
        indices = index if isinstance(index, tuple) else (index,)
        if (
            name in SYNCING
            or (name == "where" and len(args) + len(kwargs or {}) == 1)
            or any(isinstance(i, Tensor) and i.dtype == torch.bool for i in indices)
        ):
            caller = next(
                (f for f in reversed(traceback.extract_stack()[:-1]) if "/torch/" not in f.filename and f.filename != __file__), None
            )
            where = f" at {caller.filename}:{caller.lineno} ({caller.line})" if caller else ""
            raise AssertionError(
                f"host sync in the step: Tensor.{name}{where}; the step must not read "
                "device values back (decide on the CPU in collate, or keep it a tensor)"
            )
        return func(*args, **(kwargs or {}))


def check_no_host_sync(config, samples) -> None:
    """A training step on a collated batch (tokenize → mask → forward → backward) reads nothing back from
    the device, under `HostSyncGuard`; where CUDA exists, the forward also runs on the GPU under
    ``torch.cuda.set_sync_debug_mode("error")`` (the forward only: the backward is torch's own kernels)."""
    torch.manual_seed(0)
    model = MaskedModel(config)
    batch = model.tokenizer.collate(samples)
    with HostSyncGuard():
        model(batch, generator=torch.Generator().manual_seed(0)).loss.backward()
    if torch.cuda.is_available():
        model.cuda()
        batch = {k: v.cuda() if isinstance(v, Tensor) else v for k, v in batch.items()}
        generator = torch.Generator(device="cuda").manual_seed(0)
        model(batch, generator=generator).loss.backward()  # warm-up: lazy initialisation may sync once
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            out = model(batch, generator=generator)
        finally:
            torch.cuda.set_sync_debug_mode(0)
        out.loss.backward()


# Fuzzing files. hypothesis is a test-only dependency, so it is imported inside these functions:
# ``import mmcore.testing`` (the conformance checks above) keeps working without it.


def fuzz_settings(max_examples: int | None = None):
    """hypothesis settings for fuzzing a reader: ``MM_FUZZ_EXAMPLES`` examples (60 by default; a
    benchmark run uses 1000), no deadline, derandomized (the same cases every run, no example
    database) and every health check suppressed (file I/O is slow; a test's fixtures are reused)."""
    from hypothesis import HealthCheck, settings

    if max_examples is None:
        max_examples = int(os.environ.get("MM_FUZZ_EXAMPLES", "60"))
    return settings(max_examples=max_examples, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


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
                del out[offset() :]
            elif kind == "flip":
                for _ in range(draw(st.integers(1, 8)) if out else 0):
                    out[offset() % len(out)] ^= draw(st.integers(1, 255))
            else:
                at, junk = offset(), draw(st.binary(min_size=1, max_size=32))
                out[at : at + (len(junk) if kind == "overwrite" else 0)] = junk
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
