"""Images per second of SqueezeNet 1.1 and 1.0 as served, and what int8 costs in held-out accuracy.

    python bench/inference.py                                  # speed only, both archs
    python bench/inference.py --accuracy --workdir /tmp/twgen  # + train on world A, judge world B's clips

Speed: three variants of the same weights, timed round-robin in one run so
that a noisy machine slows them alike (the ratios are the figures to read):
- eager: torchvision's model as it comes, NCHW-contiguous input, `no_grad`;
- cl+im: weights and input channels-last, `inference_mode` (monitor.classify);
- int8: torch.ao FX post-training quantisation, x86/fbgemm kernels (monitor.quantize),
  calibrated on stand-in frames.
Batches of 18 (one check, K=6 n=3) and 72 (four checks batched), at each
`--input-sizes` side (224 and 128, `train.input_size`'s default; every
ratio is against eager at 224).

Accuracy (`--accuracy`): the generalization issue's held-out protocol
(bench/generalize.py's worlds): a model is trained on world A with
`twitchwatch train` (few epochs: the figures say how many) and its fp32 and
int8 copies score world B's clips, labelled by what they show. The guard
the trainer wrote into the card (int8 against fp32 on A's frozen test clips)
is printed beside it. Writes every figure as JSON (`--json`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torchvision import models as tvm

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.classify import build_model  # noqa: E402
from monitor.frames import preprocess  # noqa: E402
from monitor.quantize import quantize_int8  # noqa: E402

ARCHS = ("squeezenet1_1", "squeezenet1_0")
CLASSES = 8


def stand_in_frames(count: int, seed: int = 0) -> list[np.ndarray]:
    """Frames of the stand-in's channels (1280x720 renders), a few per channel."""
    from monitor.sim import small_scenario
    from monitor.sim.stage import world_video

    scenario = small_scenario()
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    for channel in scenario.channels:
        video = world_video(scenario, channel, "live", 120, None)
        out.extend(video.frame(int(i)) for i in rng.integers(0, 120, 4))
        if len(out) >= count:
            break
    return out[:count]


def variants(arch: str, calibration: list[np.ndarray]) -> dict:
    """Return name -> callable(frames) for the three variants, sharing one set of weights."""
    torch.manual_seed(0)
    served = build_model(arch, CLASSES, "none").eval()  # channels-last, as monitor.classify serves it
    eager = getattr(tvm, arch)(weights=None, num_classes=CLASSES).eval()
    eager.load_state_dict(served.state_dict())  # the same weights; torchvision's head keeps its ReLU
    eager = eager.to(memory_format=torch.contiguous_format)
    int8 = quantize_int8(served, calibration)

    def run_eager(batch: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return eager(batch.contiguous())

    def run_cl(batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return served(batch)

    def run_int8(batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return int8(batch.contiguous())

    return {"eager": run_eager, "cl+im": run_cl, "int8": run_int8}


def speed(arch: str, frames: list[np.ndarray], batches: list[int], rounds: int,
          input_sizes: list[int] = (224,)) -> list[dict]:
    """Time every variant at every input size, round-robin; ratios are against eager fp32 at 224 px."""
    fns = variants(arch, frames[:36])
    rows = []
    for size in batches:
        # preprocessing is not timed; the int8 model was calibrated at 224, which changes its accuracy, not its speed
        inputs = {side: preprocess([frames[i % len(frames)] for i in range(size)], side) for side in input_sizes}
        runs = {(name, side): fn for side in input_sizes for name, fn in fns.items()}
        for (_, side), fn in runs.items():
            fn(inputs[side])  # warm: allocator, packed weights
        times: dict[tuple, list[float]] = {key: [] for key in runs}
        cpu: dict[tuple, list[float]] = {key: [] for key in runs}
        for _ in range(rounds):
            for key, fn in runs.items():
                started, cpu0 = time.perf_counter(), time.process_time()
                fn(inputs[key[1]])
                times[key].append(time.perf_counter() - started)
                cpu[key].append(time.process_time() - cpu0)
        base = ("eager", 224) if ("eager", 224) in times else ("eager", input_sizes[0])
        eager, eager_cpu = statistics.median(times[base]), statistics.median(cpu[base])
        for (name, side), spent in times.items():
            median, median_cpu = statistics.median(spent), statistics.median(cpu[(name, side)])
            rows.append({"arch": arch, "batch": size, "variant": name, "input_size": side,
                         "threads": torch.get_num_threads(),
                         "images_per_second": size / median, "speedup_vs_eager": eager / median,
                         "images_per_cpu_second": size / median_cpu, "cpu_speedup_vs_eager": eager_cpu / median_cpu})
    return rows


def accuracy(arch: str, workdir: Path, epochs: int, max_minutes: float) -> dict:
    """Train on world A, score world B's clips with the fp32 and the int8 copy."""
    import dataclasses

    import generalize

    from monitor.model_registry import ModelRegistry
    from monitor.sim import StandIn, load_scenario
    from trainer.evaluate import evaluate_model

    train_name, test_name = generalize.SPLITS["worlds"]
    with StandIn(load_scenario(train_name)) as sim_a, StandIn(load_scenario(test_name)) as sim_b:
        a = generalize.World("A", sim_a.scenario, sim_a, workdir / "A")
        b = generalize.World("B", sim_b.scenario, sim_b, workdir / "B")
        a_data, b_data = a.root / "data", b.root / "clipdata"
        generalize.build_clips(a, a_data, "a.db")
        generalize.build_clips(b, b_data, "b-clips.db")
        cfg = a.config(f"inference-{arch}.toml", database="a.db", data_dir=a_data, model={"arch": arch},
                       train={"seed": 0})
        started = time.monotonic()
        trained = json.loads(generalize.cli(["train", "--json", "--epochs", str(epochs), "--max-minutes",
                                             str(max_minutes), "--config", str(cfg)]))
        train_seconds = time.monotonic() - started
        classes = trained["classes"]
        known, _ = generalize.truth_clips(b, b_data, classes)
    registry = ModelRegistry(a_data)
    fp32 = registry.load(trained["model_id"], "fp32")
    card = registry.card(trained["model_id"])
    guard = card.get("int8", {})
    int8_clf = registry.load(trained["model_id"], "int8")
    if int8_clf.serving != "int8":  # rejected by the guard: still measure it, the bench must show why
        from monitor.quantize import load_int8

        state = torch.load(registry.model_dir(trained["model_id"]) / "weights-int8.pt", weights_only=True)
        int8_clf = dataclasses.replace(fp32, serving="int8", serving_model=load_int8(fp32.model, state))
    e32, e8 = evaluate_model(fp32, known), evaluate_model(int8_clf, known)
    agree = sum(x.predicted == y.predicted for x, y in zip(e32.outcomes, e8.outcomes, strict=True)) / len(known)
    return {"arch": arch, "model_id": trained["model_id"], "epochs": epochs, "train_seconds": round(train_seconds),
            "b_clips": len(known), "b_fp32_clip_accuracy": e32.clip_accuracy, "b_int8_clip_accuracy": e8.clip_accuracy,
            "b_delta_points": 100 * (e8.clip_accuracy - e32.clip_accuracy), "b_clip_agreement": agree,
            "b_fp32_frame_accuracy": e32.frame_accuracy, "b_int8_frame_accuracy": e8.frame_accuracy,
            "a_test_guard": guard, "serving_after_guard": registry.load(trained["model_id"], "int8").serving}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--batches", default="18,72")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", default=f"1,{torch.get_num_threads()}",
                        help="torch thread counts to run at (the daemon runs 1 per CPU slot, a slot per core)")
    parser.add_argument("--input-sizes", default="224,128",
                        help="model input sides to time (train.input_size; the ratios are against eager at 224)")
    parser.add_argument("--accuracy", action="store_true", help="also train on world A and judge world B")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/twitchwatch-generalize"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--max-minutes", type=float, default=8.0)
    parser.add_argument("--json", type=Path, default=Path("bench-inference.json"))
    args = parser.parse_args(argv)
    archs = args.archs.split(",")
    frames = stand_in_frames(72)
    rows = []
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        rows += [row for arch in archs for row in speed(arch, frames, [int(b) for b in args.batches.split(",")],
                                                        args.rounds, [int(s) for s in args.input_sizes.split(",")])]
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, median of {args.rounds} round-robin rounds; "
          "img/CPU-s is what a core does while it is ours (robust to a busy machine)")
    print(f"{'arch':>14} {'thr':>3} {'batch':>5} {'variant':>7} {'px':>4} {'img/s':>8} {'x eager':>8} {'img/CPU-s':>9} "
          f"{'x eager':>8}")
    for r in rows:
        print(f"{r['arch']:>14} {r['threads']:>3} {r['batch']:>5} {r['variant']:>7} {r['input_size']:>4} "
              f"{r['images_per_second']:8.1f} "
              f"{r['speedup_vs_eager']:8.2f} {r['images_per_cpu_second']:9.1f} {r['cpu_speedup_vs_eager']:8.2f}")
    result: dict = {"threads": args.threads, "cores": os.cpu_count(), "torch": torch.__version__, "speed": rows, "accuracy": []}
    if args.accuracy:
        for arch in archs:
            acc = accuracy(arch, args.workdir, args.epochs, args.max_minutes)
            result["accuracy"].append(acc)
            g = acc["a_test_guard"]
            print(f"{arch}: held-out world B, {acc['b_clips']} clips, model of {acc['epochs']} epochs: clip accuracy "
                  f"fp32 {acc['b_fp32_clip_accuracy']:.3f} int8 {acc['b_int8_clip_accuracy']:.3f} "
                  f"({acc['b_delta_points']:+.1f} points, {acc['b_clip_agreement']:.3f} of clips agree); "
                  f"guard on A's test clips: fp32 {g.get('fp32_clip_accuracy')} int8 {g.get('int8_clip_accuracy')} "
                  f"-> serves {acc['serving_after_guard']}", flush=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
