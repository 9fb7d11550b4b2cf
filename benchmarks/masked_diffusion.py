"""Masked diffusion on mmcore's own text model: the first-hitting sampler against token-by-token
categorical sampling, and float32 against float64 Gumbel noise (Zheng et al. 2024, "Masked
Diffusion Models are Secretly Time-Agnostic Masked Models and Exploit Inaccurate Categorical
Sampling"; MDLM, Sahoo et al. 2024).

    python benchmarks/masked_diffusion.py                                   # full size: ~30 min on 2 CPU cores
    python benchmarks/masked_diffusion.py --steps 30 --samples 4 --tbt-steps 16 64 --maskgit-steps 8
    python benchmarks/masked_diffusion.py --reuse --tbt-steps 64 256 1024 4096   # sample again, no training

Two models are trained in-process with the same code as ``mm train``, on the same corpus (the
text-mlm recipe: the Python Language Reference prose, its WordPiece vocabulary learned on the
training split):

* the generator: text-mlm with ``model.masking.name=diffusion`` (t ~ U(0, 1) per batch, all hidden
  tokens shown as [MASK]: the masked-diffusion ELBO, see `mmcore.discrete.DiffusionMasking`;
  ``--per-sample`` draws t per sample with the ELBO's token weights);
* the judge: text-mlm as it is (BERT masking, 15 %, 80/10/10), seed + 1, on the generator's
  vocabulary, trained separately: it shares no weight and no objective with the generator, and it
  saw no generated text, so it scores samples as a model of the corpus. A masked LM is a fair judge
  of a bidirectional generator's text through its pseudo-likelihood (below); there is no causal
  model in mmcore to give an exact likelihood.

Unconditional samples: ``--samples`` sequences of ``--length`` tokens, every position [MASK], at
temperature 1, from (a) the first-hitting sampler (FHS) in float64, (b) the token-by-token
categorical reverse process of MDLM in float64 with S steps for each S in ``--tbt-steps``,
(c) both in float32 (FHS, and token-by-token at each S in ``--f32-steps``), (d) MaskGIT's
confidence-ordered `fill` with each of ``--maskgit-steps``.

Measures, per sampler:

* model calls (forward passes of the batch; every sample takes part in each) and, per sample, the
  calls that unmasked something in it (what a sampler caching unchanged states would pay);
  seconds per sample (wall clock of the batch / samples, this machine);
* generative pseudo-perplexity under the judge: PPPL = exp(-Σ_samples Σ_i log p_judge(x_i | x without
  x_i) / Σ_samples L), each token scored with it alone shown as [MASK] and every other token visible
  (Salazar et al. 2020); also the mean and standard error over samples of the per-token pseudo-NLL;
* token entropy: each sample's unigram entropy -Σ_v (c_v / L) log(c_v / L) of its own token
  counts c_v, in nats, averaged over samples (Zheng et al.'s diversity measure; log L at most).

The same PPPL and entropy are given for the data: the first ``--length`` tokens of each held-out
chunk at least that long. FHS's speed-up over token-by-token sampling is read at equal quality
(PPPL and entropy within their standard errors); the precision finding is the entropy (effective
temperature) of float32 sampling against float64 at T = 1. Writes
benchmarks/results/masked-diffusion.json (``--json``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
RECIPE = "text-mlm"
# the corpus and blocks of the published numbers (text-mlm before it gained the docstring prose and dropout)
AS_MEASURED = {"data__dataset__docstrings": False, "model__encoder__dropout": 0.0}


def need_text_plugin() -> None:
    from mmcore.errors import MMCoreError
    from mmcore.plugins import get_registry

    try:
        get_registry().modality("text")
    except MMCoreError as exc:
        sys.exit(f"benchmarks/masked_diffusion.py needs the mm-text plugin (pip install -e plugins/mm-text): {exc}")


def warmup_for(steps: int) -> int:
    return min(100, max(1, steps // 6))  # the recipe's 100, shortened for smoke runs


def train_models(args, out: Path) -> tuple[Path, Path, dict]:
    """The generator (diffusion masking) and the judge (BERT masking, the generator's vocabulary)."""
    import mmcore

    common = dict(
        overwrite=True, train__trackers=[], train__checkpoint_every=10**6, train__log_every=max(1, min(50, args.steps // 3)), **AS_MEASURED
    )
    masking = {"model__masking__name": "diffusion"}
    if args.per_sample:
        masking["model__masking__per_sample"] = True
    generator_dir, judge_dir = out / "generator" / "model", out / "judge" / "model"
    timings = {}
    if not (args.reuse and generator_dir.is_dir()):
        start = time.perf_counter()
        generator_dir = mmcore.train(
            RECIPE,
            output_dir=str(out / "generator"),
            train__steps=args.steps,
            train__warmup_steps=warmup_for(args.steps),
            train__seed=args.seed,
            **masking,
            **common,
        )
        timings["generator_train_seconds"] = round(time.perf_counter() - start, 1)
    generator = mmcore.from_pretrained(str(generator_dir))
    vocab = out / "vocabulary" / "tokenizer.json"
    vocab.parent.mkdir(parents=True, exist_ok=True)
    vocab.write_text(generator.tokenizer.tokenizer_json)
    if not (args.reuse and judge_dir.is_dir()):
        start = time.perf_counter()
        judge_dir = mmcore.train(
            RECIPE,
            output_dir=str(out / "judge"),
            train__steps=args.judge_steps or args.steps,
            train__warmup_steps=warmup_for(args.judge_steps or args.steps),
            train__seed=args.seed + 1,
            model__tokenizer__train=None,
            model__tokenizer__path=str(vocab),
            **common,
        )
        timings["judge_train_seconds"] = round(time.perf_counter() - start, 1)
    return generator_dir, judge_dir, timings


# -- measures ---------------------------------------------------------------------------------


def as_batch(ids: torch.Tensor) -> dict[str, torch.Tensor]:
    return {"ids": ids, "word_ids": torch.arange(ids.shape[1]).expand_as(ids)}


@torch.no_grad()
def pseudo_nll(judge, ids: torch.Tensor, rows_per_pass: int = 512) -> torch.Tensor:
    """[N] mean over each sample's tokens of -log p_judge(x_i | every other token), x_i shown as [MASK]."""
    from mmcore.sampling import hidden_logits

    N, L = ids.shape
    copies = ids.repeat_interleave(L, dim=0)  # [N·L, L]: copy i of a sample hides its token i
    hidden = torch.eye(L, dtype=torch.bool).repeat(N, 1)
    nll = []
    for a in range(0, N * L, rows_per_pass):
        part = copies[a : a + rows_per_pass]
        tokens = judge.tokenizer.tokenize(as_batch(part))
        logits, index, _ = hidden_logits(judge, tokens, hidden[a : a + rows_per_pass])  # [M, 1, V]
        logp = torch.log_softmax(logits[:, 0].double(), dim=-1)
        nll.append(-logp.gather(1, part.gather(1, index))[:, 0])
    return torch.cat(nll).view(N, L).mean(dim=1)


def token_entropy(ids: torch.Tensor) -> torch.Tensor:
    """[N] unigram entropy (nats) of each row's own token counts."""
    out = []
    for row in ids:
        p = torch.bincount(row).double()
        p = p[p > 0] / row.numel()
        out.append(-(p * p.log()).sum())
    return torch.stack(out)


def standard_error(x: torch.Tensor) -> float:
    return (x.std() / math.sqrt(x.numel())).item() if x.numel() > 1 else float("nan")


def summary(nll: torch.Tensor, entropy: torch.Tensor) -> dict[str, float]:
    se = standard_error
    return {
        "pppl": round(math.exp(nll.mean().item()), 2),
        "pseudo_nll": round(nll.mean().item(), 4),
        "pseudo_nll_se": round(se(nll), 4),
        "entropy": round(entropy.mean().item(), 4),
        "entropy_se": round(se(entropy), 4),
    }


@torch.no_grad()
def drawn_surprisal(model, ids: torch.Tensor, states: torch.Tensor, rows_per_pass: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sample, the mean over its tokens of (-log p(x_i), entropy of p) where p is the generator's categorical
    over the allowed ids at the state x_i was unmasked from (``states`` [C, B, N]: hidden before each call).

    Exact sampling at T = 1 draws x_i from p, so the two means agree up to noise; a lower effective
    temperature draws likelier ids: the first falls below the second."""
    from mmcore.sampling import shown_states

    after = torch.cat([states[1:], torch.zeros_like(states[:1])])
    unmasked = states & ~after  # [C, B, N] tokens each call unmasked
    calls, rows = unmasked.any(dim=2).nonzero(as_tuple=True)  # the (call, sample) pairs that unmasked something
    lo, hi = model.tokenizer.tokenize(as_batch(ids[:1])).meta.get("generate_ids", (0, model.tokenizer.vocab_size))
    surprisal = torch.zeros(ids.shape, dtype=torch.float64)
    entropy = torch.zeros(ids.shape, dtype=torch.float64)
    for a in range(0, calls.numel(), rows_per_pass):
        c, b = calls[a : a + rows_per_pass], rows[a : a + rows_per_pass]
        encoded = shown_states(model, model.tokenizer.tokenize(as_batch(ids[b])), states[c, b])  # the state before the call
        which, pos = unmasked[c, b].nonzero(as_tuple=True)
        logp = torch.log_softmax(model.head(encoded[which, pos]).double()[:, lo:hi], dim=-1)  # [P, allowed ids]
        chosen = ids[b[which], pos] - lo
        surprisal[b[which], pos] = -logp.gather(1, chosen[:, None])[:, 0]
        entropy[b[which], pos] = -(logp.exp() * logp).sum(dim=1)
    return surprisal.mean(dim=1), entropy.mean(dim=1)


class CallLog:
    """Every model call's hidden mask [B, N] (a forward pre-hook on the embedder)."""

    def __init__(self, model) -> None:
        self.states: list[torch.Tensor] = []
        self.handle = model.embedder.register_forward_pre_hook(lambda module, args: self.states.append(args[1].clone()))

    def close(self) -> tuple[torch.Tensor, float]:
        """(hidden before each call [C, B, N], mean calls per sample that unmasked something in it)."""
        self.handle.remove()
        states = torch.stack(self.states)  # [C, B, N]
        after = torch.cat([states[1:], torch.zeros_like(states[:1])])  # the last call leaves nothing hidden
        return states, (states != after).any(dim=2).sum(dim=0).double().mean().item()


def run_sampler(model, judge, batch, spec: dict, seed: int) -> tuple[dict, torch.Tensor]:
    from mmcore.sampling import fill, fill_first_hitting, fill_token_by_token

    precision = torch.float32 if spec["precision"] == "float32" else torch.float64
    generator = torch.Generator().manual_seed(seed)
    log = CallLog(model)
    start = time.perf_counter()
    if spec["sampler"] == "first-hitting":
        ids, filled = fill_first_hitting(model, batch, temperature=1.0, generator=generator, precision=precision)
    elif spec["sampler"] == "token-by-token":
        ids, filled = fill_token_by_token(model, batch, spec["steps"], temperature=1.0, generator=generator, precision=precision)
    else:
        ids, filled = fill(model, batch, steps=spec["steps"], temperature=1.0, generator=generator)
    seconds = time.perf_counter() - start
    states, changing = log.close()
    if not filled.all() or (ids == model.tokenizer.mask_id).any():
        raise RuntimeError(f"{spec}: a position was left masked")
    result = dict(spec, model_calls=states.shape[0], unmasking_calls_per_sample=round(changing, 2))
    result["seconds_per_sample"] = round(seconds / ids.shape[0], 4)
    result.update(summary(pseudo_nll(judge, ids), token_entropy(ids)))
    surprisal, entropy = drawn_surprisal(model, ids, states)
    result["drawn_nll"] = round(surprisal.mean().item(), 4)
    result["model_entropy"] = round(entropy.mean().item(), 4)
    result["drawn_minus_entropy"] = round((surprisal - entropy).mean().item(), 4)
    result["drawn_minus_entropy_se"] = round(standard_error(surprisal - entropy), 4)
    result["examples"] = [model.tokenizer.render(row.tolist()) for row in ids[:2]]
    return result, ids


def data_windows(tok, length: int, limit: int) -> torch.Tensor:
    """The first ``length`` tokens of each held-out chunk at least that long: [M, length]."""
    from mmcore.config import load_recipe
    from mmcore.model import build_part
    from mmcore.plugins import get_registry

    cfg = load_recipe(RECIPE, ["data.dataset.docstrings=false"])
    dataset = build_part(get_registry().dataset, "text", dict(cfg.data.dataset)).build(tok, "test")
    rows = [ids[:length] for ids in (e.ids for e in tok.encode([dataset[i]["text"] for i in range(len(dataset))])) if len(ids) >= length]
    if not rows:
        sys.exit(f"no held-out chunk has {length} tokens; give a smaller --length")
    return torch.tensor(rows[:limit])


def specs_of(args) -> list[dict]:
    specs = [{"sampler": "first-hitting", "steps": None, "precision": "float64"}]
    specs += [{"sampler": "token-by-token", "steps": s, "precision": "float64"} for s in args.tbt_steps]
    specs += [{"sampler": "first-hitting", "steps": None, "precision": "float32"}]
    specs += [{"sampler": "token-by-token", "steps": s, "precision": "float32"} for s in args.f32_steps]
    specs += [{"sampler": "maskgit", "steps": s, "precision": "float64"} for s in args.maskgit_steps]
    return specs


def gap(a: dict, b: dict, key: str) -> float:
    """(b - a) in standard errors of the difference."""
    se = math.hypot(a[f"{key}_se"], b[f"{key}_se"])
    return round((b[key] - a[key]) / se, 2) if se > 0 else float("nan")


def findings(runs: list[dict]) -> dict:
    def find(sampler, precision, steps=None):
        return next((r for r in runs if r["sampler"] == sampler and r["precision"] == precision and r["steps"] == steps), None)

    fhs = find("first-hitting", "float64")
    speedup = [
        {
            "token_by_token_steps": r["steps"],
            "calls_ratio": round(r["model_calls"] / fhs["model_calls"], 2),
            "unmasking_calls_ratio": round(r["unmasking_calls_per_sample"] / fhs["unmasking_calls_per_sample"], 2),
            "seconds_ratio": round(r["seconds_per_sample"] / fhs["seconds_per_sample"], 2),
            "pseudo_nll_gap_se": gap(fhs, r, "pseudo_nll"),
            "entropy_gap_se": gap(fhs, r, "entropy"),
        }
        for r in runs
        if r["sampler"] == "token-by-token" and r["precision"] == "float64"
    ]
    precision = []
    for r32 in (r for r in runs if r["precision"] == "float32"):
        r64 = find(r32["sampler"], "float64", r32["steps"])
        if r64 is not None:
            precision.append(
                {
                    "sampler": r32["sampler"],
                    "steps": r32["steps"],
                    "entropy_float64": r64["entropy"],
                    "entropy_float32": r32["entropy"],
                    "entropy_drop": round(r64["entropy"] - r32["entropy"], 4),
                    "entropy_gap_se": gap(r64, r32, "entropy"),
                    "drawn_minus_entropy_float64": r64["drawn_minus_entropy"],
                    "drawn_minus_entropy_float32": r32["drawn_minus_entropy"],
                    "drawn_minus_entropy_gap_se": gap(r64, r32, "drawn_minus_entropy"),
                    "pppl_float64": r64["pppl"],
                    "pppl_float32": r32["pppl"],
                }
            )
    return {"fhs_speedup": speedup, "float32_vs_float64": precision}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1000, help="training steps of the generator (default 1000)")
    parser.add_argument("--judge-steps", type=int, default=None, help="training steps of the judge (default: --steps)")
    parser.add_argument("--samples", type=int, default=64, help="unconditional samples per sampler (default 64)")
    parser.add_argument("--length", type=int, default=64, help="tokens per sample (default 64)")
    parser.add_argument("--tbt-steps", type=int, nargs="+", default=[64, 256, 1024], help="token-by-token time steps S")
    parser.add_argument("--f32-steps", type=int, nargs="*", default=None, help="token-by-token S also in float32 (default: the largest)")
    parser.add_argument("--maskgit-steps", type=int, nargs="*", default=[8, 64], help="MaskGIT fill steps")
    parser.add_argument("--per-sample", action="store_true", help="train the generator with t per sample and ELBO weights")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/masked-diffusion", help="where the two models are trained")
    parser.add_argument("--reuse", action="store_true", help="use the models already in --out instead of training")
    parser.add_argument("--data-windows", type=int, default=256, help="held-out windows scored as the data reference")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "masked-diffusion.json"))
    args = parser.parse_args()
    if args.f32_steps is None:
        args.f32_steps = [max(args.tbt_steps)]
    need_text_plugin()
    import mmcore

    out = Path(args.out)
    generator_dir, judge_dir, timings = train_models(args, out)
    model, judge = mmcore.from_pretrained(str(generator_dir)).eval(), mmcore.from_pretrained(str(judge_dir)).eval()
    if judge.tokenizer.backend.get_vocab() != model.tokenizer.backend.get_vocab():
        sys.exit("the judge's vocabulary differs from the generator's: its pseudo-likelihood would score other ids")
    tok = model.tokenizer
    data = data_windows(tok, args.length, args.data_windows)
    reference = dict(windows=data.shape[0], **summary(pseudo_nll(judge, data), token_entropy(data)))
    print(f"data: {json.dumps(reference)}", flush=True)
    batch = tok.collate([tok.placeholder(args.length)] * args.samples)
    if batch["ids"].shape[1] != args.length or "valid" in batch:
        batch = as_batch(torch.full((args.samples, args.length), tok.mask_id))
    runs = []
    for spec in specs_of(args):
        result, _ = run_sampler(model, judge, batch, spec, args.seed)
        runs.append(result)
        print(json.dumps({k: v for k, v in result.items() if k != "examples"}), flush=True)
    report = {
        "config": {k: v for k, v in vars(args).items() if k not in ("json",)},
        "generator": {"folder": str(generator_dir), "masking": dict(model.config["masking"])},
        "judge": {"folder": str(judge_dir), "masking": dict(judge.config["masking"])},
        "timings": timings,
        "threads": torch.get_num_threads(),
        "data": reference,
        "runs": runs,
        **findings(runs),
        "definitions": {
            "pppl": "exp of the mean over all sampled tokens of -log p_judge(x_i | x without x_i), x_i shown as [MASK]",
            "entropy": "mean over samples of the unigram entropy (nats) of each sample's own token counts",
            "model_calls": "forward passes of the batch; every sample takes part in each",
            "unmasking_calls_per_sample": "mean over samples of the calls that unmasked at least one of its tokens",
            "drawn_nll": "mean over tokens of -log p_generator(x_i) at the state x_i was unmasked from (allowed ids)",
            "model_entropy": "mean over the same tokens of the entropy of that categorical",
            "drawn_minus_entropy": "drawn_nll - model_entropy: ~0 for exact sampling at T = 1, < 0 at a lower effective temperature",
            "gap_se": "difference divided by the standard error of the difference (over samples)",
        },
    }
    head = f"{'sampler':15s} {'S':>5s} {'prec':>7s} {'calls':>6s} {'unmask':>7s} {'s/sample':>9s} {'PPPL':>8s} {'entropy':>8s}"
    print(f"\n{head} {'drawn-H':>8s} {'(se)':>6s}")
    print(f"{'data':15s} {'':>5s} {'':>7s} {'':>6s} {'':>7s} {'':>9s} {reference['pppl']:8.1f} {reference['entropy']:8.3f}")
    for r in runs:
        print(
            f"{r['sampler']:15s} {r['steps'] or '':>5} {r['precision']:>7s} {r['model_calls']:6d} {r['unmasking_calls_per_sample']:7.1f} "
            f"{r['seconds_per_sample']:9.4f} {r['pppl']:8.1f} {r['entropy']:8.3f} "
            f"{r['drawn_minus_entropy']:8.3f} {r['drawn_minus_entropy_se']:6.3f}"
        )
    print(json.dumps({k: report[k] for k in ("fhs_speedup", "float32_vs_float64")}, indent=1))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
