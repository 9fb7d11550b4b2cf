"""Training-step throughput of mmcore against its Hugging Face peer, same process.

Each row (a module in benchmarks/rows/) times full training steps (forward,
backward, fused AdamW step) of an mmcore model and of the peer built with the
same architecture, on the same random inputs, alternating rounds so drift hits
both equally, and prints items/s for each (median step time within a round,
best round) and the ratio (mmcore / peer).

    python benchmarks/throughput.py                            # every row, CPU tiny configs
    python benchmarks/throughput.py --row image --preset h100  # ViT-B/16 224², dec 8×512, bf16, batch 256
    python benchmarks/throughput.py --row image --preset h100 --compile

Both sides get the same optimizer and autocast (bf16 on a GPU that has it).
"""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import rows  # noqa: E402


def time_steps(model, step_loss, inputs, steps: int, autocast, compile_: bool) -> float:
    """Median seconds per training step over ``steps`` steps."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    loss_fn = torch.compile(step_loss) if compile_ else step_loss
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    times = []
    for i in range(steps):
        sync()
        start = time.perf_counter()
        with autocast():
            loss = loss_fn(inputs[i % len(inputs)])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_row(name: str, preset: str, args) -> dict:
    row = importlib.import_module(f"rows.{name}")
    p = dict(row.PRESETS[preset])
    if args.batch:
        p["batch"] = args.batch
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else nullcontext
    torch.manual_seed(0)
    inputs = row.make_inputs(p, device)
    mm_model, mm_step = row.build_mmcore(p, device)
    peer_name, peer_model, peer_step = row.build_peer(p, device)
    cases = {"mmcore": (mm_model, mm_step), peer_name: (peer_model, peer_step)}
    for model, step in cases.values():  # warm-up and compilation outside the timed rounds
        time_steps(model, step, inputs, args.warmup, autocast, args.compile)
    per_step = {n: [] for n in cases}
    for _ in range(args.rounds):
        for n, (model, step) in cases.items():
            per_step[n].append(time_steps(model, step, inputs, args.steps, autocast, args.compile))
    # best round per model: on a shared machine the least-disturbed round is the closest to the code's speed
    rate = {n: row.items_per_batch(p) / min(ts) for n, ts in per_step.items()}
    params = {n: sum(x.numel() for x in m.parameters()) / 1e6 for n, (m, _) in cases.items()}
    return {"row": name, "preset": preset, "unit": row.UNIT, "bf16": bf16, "compile": args.compile,
            "items_per_s": rate, "params_m": params, "ratio": rate["mmcore"] / rate[peer_name]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    names = sorted(m.name for m in pkgutil.iter_modules(rows.__path__))
    parser.add_argument("--row", choices=names, action="append", help="rows to run (default: all)")
    parser.add_argument("--preset", default="cpu-tiny", help="a preset every chosen row defines (cpu-tiny, h100)")
    parser.add_argument("--batch", type=int, help="override the preset's batch size")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per model")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="torch.compile both step functions")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device {device}, preset {args.preset}, compile {args.compile}")
    print(f"{'row':10s} {'model':42s} {'params (M)':>10s} {'items/s':>12s} {'ratio':>7s}")
    results = []
    for name in args.row or names:
        r = run_row(name, args.preset, args)
        results.append(r)
        for model, rate in r["items_per_s"].items():
            ratio = f"{r['ratio']:7.2f}" if model == "mmcore" else ""
            print(f"{name:10s} {model:42s} {r['params_m'][model]:10.2f} {rate:9.1f} {r['unit']:>5s}{ratio}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
