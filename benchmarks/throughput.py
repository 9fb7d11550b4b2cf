"""Training-step throughput of mmcore against its Hugging Face peer, same process.

Each row (a module in benchmarks/rows/) times full training steps (forward,
backward, fused AdamW step) of an mmcore model and of the peer built with the
same architecture, on the same random inputs, alternating rounds so drift hits
both equally, and prints items/s for each (median step time within a round,
best round) and the ratio (mmcore / peer).

    python benchmarks/throughput.py                            # every row, CPU tiny configs
    python benchmarks/throughput.py --device cuda --preset h100  # every row at real size, bf16
    python benchmarks/throughput.py --row image --preset h100 --compile

Both sides get the same optimizer and autocast (bf16 on a GPU that has it).
Each side's FLOPs per training step are counted with `torch.utils.flop_counter`
on its own step (so work one side skips is not credited to it), turned into
achieved TFLOP/s and a share of the matmul peak measured in the same run;
results go to benchmarks/results/ as JSON with the device and versions.
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


def step_flops(model, step_loss, inputs, autocast) -> int:
    """FLOPs of one training step (forward and backward), counted by `torch.utils.flop_counter` on the
    model's own step, so each side is measured by what it actually computes."""
    from torch.utils.flop_counter import FlopCounterMode

    model.train()
    with FlopCounterMode(display=False) as counter:
        with autocast():
            loss = step_loss(inputs[0])
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops()


def matmul_peak(device: torch.device, seconds: float = 2.0) -> float:
    """The card's (or CPU's) measured dense matmul rate in FLOP/s: bf16 on a GPU that has it, else fp32."""
    cuda = device.type == "cuda"
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    n = 8192 if cuda else 1024
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    for _ in range(3):
        a @ b
    sync()
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    sync()
    return 2 * n**3 * count / (time.perf_counter() - start)


def run_row(name: str, preset: str, args) -> dict:
    row = importlib.import_module(f"rows.{name}")
    p = dict(row.PRESETS[preset])
    if args.batch:
        p["batch"] = args.batch
    device = torch.device(args.device)
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if bf16 else nullcontext
    torch.manual_seed(0)
    inputs = row.make_inputs(p, device)
    mm_model, mm_step = row.build_mmcore(p, device)
    peer_name, peer_model, peer_step = row.build_peer(p, device)
    cases = {"mmcore": (mm_model, mm_step), peer_name: (peer_model, peer_step)}
    flops = {n: step_flops(model, step, inputs, autocast) for n, (model, step) in cases.items()}
    for model, step in cases.values():  # warm-up and compilation outside the timed rounds
        time_steps(model, step, inputs, args.warmup, autocast, args.compile)
    per_step = {n: [] for n in cases}
    for _ in range(args.rounds):
        for n, (model, step) in cases.items():
            per_step[n].append(time_steps(model, step, inputs, args.steps, autocast, args.compile))
    # best round per model: on a shared machine the least-disturbed round is the closest to the code's speed
    rate = {n: row.items_per_batch(p) / min(ts) for n, ts in per_step.items()}
    tflops = {n: flops[n] / min(ts) / 1e12 for n, ts in per_step.items()}
    params = {n: sum(x.numel() for x in m.parameters()) / 1e6 for n, (m, _) in cases.items()}
    return {
        "row": name,
        "preset": preset,
        "unit": row.UNIT,
        "bf16": bf16,
        "compile": args.compile,
        "items_per_s": rate,
        "params_m": params,
        "ratio": rate["mmcore"] / rate[peer_name],
        "step_gflop": {n: f / 1e9 for n, f in flops.items()},
        "tflop_per_s": tflops,
        "percent_of_peak": {n: 100 * t * 1e12 / args.peak for n, t in tflops.items()},
    }


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
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cuda or cpu")
    parser.add_argument("--json", help="write the results here (default: benchmarks/results/DEVICE-PRESET.json)")
    args = parser.parse_args()
    if args.device.startswith("cuda"):
        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA device is visible to torch")
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    cuda = args.device.startswith("cuda")
    device = torch.cuda.get_device_name() if cuda else f"cpu ({torch.get_num_threads()} threads)"
    args.peak = matmul_peak(torch.device(args.device))
    print(
        f"device {device}, preset {args.preset}, compile {args.compile}, "
        f"measured matmul peak {args.peak / 1e12:.2f} TFLOP/s ({'bf16' if cuda else 'fp32'})"
    )
    print(f"{'row':10s} {'model':42s} {'params (M)':>10s} {'items/s':>12s} {'TFLOP/s':>8s} {'% peak':>7s} {'ratio':>7s}")
    results = []
    for name in args.row or names:
        r = run_row(name, args.preset, args)
        results.append(r)
        for model, rate in r["items_per_s"].items():
            ratio = f"{r['ratio']:7.2f}" if model == "mmcore" else ""
            print(
                f"{name:10s} {model:42s} {r['params_m'][model]:10.2f} {rate:9.1f} {r['unit']:>5s} "
                f"{r['tflop_per_s'][model]:8.3f} {r['percent_of_peak'][model]:6.1f}%{ratio}"
            )
    out = Path(args.json or Path(__file__).parent / "results" / f"{args.preset}-{args.device.split(':')[0]}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"device": device, "versions": versions(), "peak_tflop_per_s": args.peak / 1e12, "rows": results}, indent=2))
    print(f"results: {out}")


def versions() -> dict:
    import importlib.metadata as md

    found = {}
    for dist in ("torch", "transformers", "accelerate", "mmcore"):
        try:
            found[dist] = md.version(dist)
        except md.PackageNotFoundError:
            found[dist] = None
    found["cuda"] = torch.version.cuda
    return found


if __name__ == "__main__":
    main()
