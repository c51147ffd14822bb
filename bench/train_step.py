"""What one training step costs in each precision: SqueezeNet forward + backward + AdamW on one batch.

    python bench/train_step.py                       # squeezenet1_1, 24 frames a step, 224 px, 2 threads
    python bench/train_step.py --arch squeezenet1_0 --steps 20 --json step.json

The precisions run interleaved (one step of each in turn, after a warm-up),
so a busy machine slows them alike and the ratio stays meaningful. Prints
milliseconds per frame (median over steps) and each precision's speed-up
over fp32, and how far bf16's loss and gradients are from fp32's on the same
batch and weights. `train.precision = "auto"` picks bf16 only where the CPU
has native bf16 instructions (`trainer.train.bf16_native`).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

from monitor.classify import ARCHS, build_model
from trainer.train import autocast, bf16_native

PRECISIONS = ("fp32", "bf16")


def step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: torch.Tensor, targets: torch.Tensor,
         precision: str) -> float:
    """Run one optimiser step; return its wall seconds."""
    started = time.perf_counter()
    with autocast(precision):
        logits = model(batch)
    loss = F.cross_entropy(logits.float(), targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return time.perf_counter() - started


def gradient_gap(arch: str, batch: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Return bf16's relative error on the loss and the gradient norm against fp32, same weights and batch."""
    out = {}
    for precision in PRECISIONS:
        torch.manual_seed(0)
        model = build_model(arch, 8)
        with autocast(precision):
            logits = model(batch)
        loss = F.cross_entropy(logits.float(), targets)
        loss.backward()
        grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        out[precision] = (float(loss.detach()), grad)
    (loss32, grad32), (loss16, grad16) = out["fp32"], out["bf16"]
    return {"loss_relative_error": abs(loss16 - loss32) / abs(loss32),
            "gradient_relative_error": float((grad16 - grad32).norm() / grad32.norm())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=ARCHS, default="squeezenet1_1")
    parser.add_argument("--batch", type=int, default=24, help="frames a step (train.batch_size)")
    parser.add_argument("--size", type=int, default=224, help="input pixels a side")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per precision")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batch = torch.rand(args.batch, 3, args.size, args.size).contiguous(memory_format=torch.channels_last)
    targets = torch.randint(0, 8, (args.batch,))
    runs = {}
    for precision in PRECISIONS:
        model = build_model(args.arch, 8)
        runs[precision] = (model, torch.optim.AdamW(model.parameters(), lr=3e-4))
    seconds: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for i in range(args.steps + 2):
        for precision, (model, optimizer) in runs.items():
            took = step(model, optimizer, batch, targets, precision)
            if i >= 2:  # the first steps pay for allocation and kernel choice
                seconds[precision].append(took)
    per_frame = {p: statistics.median(s) / args.batch * 1000 for p, s in seconds.items()}
    report = {
        "arch": args.arch, "batch": args.batch, "size": args.size, "threads": args.threads,
        "bf16_native": bf16_native(), "ms_per_frame": per_frame,
        "speedup_over_fp32": {p: per_frame["fp32"] / per_frame[p] for p in PRECISIONS},
        **gradient_gap(args.arch, batch, targets),
    }
    print(f"{args.arch}, {args.batch} frames a step at {args.size} px, {args.threads} threads, "
          f"native bf16: {report['bf16_native']}")
    print(f"{'precision':<10}{'ms/frame':>10}{'speed-up':>10}")
    for p in PRECISIONS:
        print(f"{p:<10}{per_frame[p]:>10.1f}{report['speedup_over_fp32'][p]:>9.2f}x")
    print(f"bf16 vs fp32 on one batch: loss {report['loss_relative_error']:.2%} off, "
          f"gradient {report['gradient_relative_error']:.2%} off")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=2)
            fh.write("\n")


if __name__ == "__main__":
    main()
