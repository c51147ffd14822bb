"""CPU seconds and bytes per completed check, as `run --once --json` reports them, variant by variant.

    python bench/check.py [--scenario world-b] [--cycles 2] [--capture-seconds 8]
    python bench/check.py --model-data /tmp/twperf-gen/A/data      # a trained model (its active one)

The stand-in runs in a process of its own (`python -m monitor.sim`), so its
rendering and encoding do not count: what is measured is one twitchwatch
process doing cycles (`monitor.cycle.run_cycle`, what `run --once` runs),
cpu_seconds / completed and bytes_downloaded / checks. Variants, run
round-robin cycle by cycle in one run (the machine is noisy):
- best-fp32: the tallest variant (streamlink's "best"), fp32 serving;
- chosen-fp32: the smallest variant at least 224 px tall (monitor.capture), fp32;
- chosen-int8: the same with the int8 copy serving (monitor.quantize);
- chosen-int8-thumb: the same with the thumbnail pre-screen (monitor.thumbnail).
An untrained model (the default) costs what a trained one costs, but it is
never confident, so its pre-screen settles nothing: pass --model-data for a
trained model to see captures saved. When the model has no int8 copy the
guard accepted, one is made here from stand-in thumbnails, for cost only.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor import check as check_module  # noqa: E402
from monitor.capture import capture_stream  # noqa: E402
from monitor.classify import build_model  # noqa: E402
from monitor.config import load_config  # noqa: E402
from monitor.cycle import Runtime, run_cycle  # noqa: E402
from monitor.model_registry import ModelRegistry  # noqa: E402
from monitor.quantize import quantize_int8  # noqa: E402
from monitor.store import Store  # noqa: E402
from monitor.thumbnail import fetch_thumbnail  # noqa: E402

VARIANTS = {
    "best-fp32": {"best": True, "inference": "fp32", "thumb": False},
    "chosen-fp32": {"best": False, "inference": "fp32", "thumb": False},
    "chosen-int8": {"best": False, "inference": "int8", "thumb": False},
    "chosen-int8-thumb": {"best": False, "inference": "int8", "thumb": True},
}


class StandInProcess:
    """`python -m monitor.sim` in a child process; yields its [twitch] and [categories] config."""

    def __init__(self, scenario: str, workdir: Path):
        self.scenario, self.path = scenario, workdir / "standin.toml"

    def __enter__(self) -> dict:
        self.proc = subprocess.Popen([sys.executable, "-m", "monitor.sim", "--scenario", self.scenario,
                                      "--write-config", str(self.path)], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while not self.path.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the stand-in did not start")
            time.sleep(0.2)
        return tomllib.loads(self.path.read_text())

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def runtime_for(name: str, spec: dict, base: dict, workdir: Path, model_data: Path) -> Runtime:
    cfg = load_config(environ={}, overrides={
        **base,
        "monitor": {**base["monitor"], "thumbnail_prescreen": spec["thumb"]},
        "storage": {"database_url": f"sqlite:///{workdir / name}.db", "data_dir": str(model_data)},
        "model": {"pretrained": "none", "inference": spec["inference"]},
        "retain": {"enabled": False},
    })
    Store(cfg.storage.database_url).upgrade()
    return Runtime(cfg)


def untrained_model(data_dir: Path, classes: list[str]) -> None:
    from trainer.registry import save_model

    model_id = save_model(data_dir, build_model("squeezenet1_1", len(classes), "none"),
                          {"classes": classes, "arch": "squeezenet1_1", "segments": 6, "frames_per_segment": 3})
    ModelRegistry(data_dir).activate(model_id)


def serve_int8_for_cost(rt: Runtime) -> str:
    """Make the runtime's classifier serve int8; return how (the guard's, or made here for cost only)."""
    clf = rt.classifier()
    if clf.serving == "int8":
        return "int8 accepted by the model's guard"
    streams = [s for g in rt.cfg.categories.watch for s in rt.helix.top_streams(g, 3)]
    frames = [fetch_thumbnail(s.thumbnail_url)[0] for s in streams[:24]]
    clf.serve_int8(quantize_int8(clf.model, frames))
    return "int8 made here from thumbnails (guard bypassed: cost only)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="world-b")
    parser.add_argument("--cycles", type=int, default=2, help="measured cycles per variant (after one warm-up)")
    parser.add_argument("--capture-seconds", type=int, default=8)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--model-data", type=Path, help="a data_dir whose active model to use (default: untrained)")
    parser.add_argument("--json", type=Path, default=Path("bench/results/check.json"))
    args = parser.parse_args(argv)
    names = args.variants.split(",")
    with tempfile.TemporaryDirectory() as tmp, StandInProcess(args.scenario, Path(tmp)) as standin:
        workdir = Path(tmp)
        classes = standin["categories"]["watch"]
        model_data = args.model_data or workdir / "data"
        if args.model_data is None:
            untrained_model(model_data, classes)
        base = {"twitch": standin["twitch"], "categories": standin["categories"],
                "monitor": {"capture_seconds": args.capture_seconds, "segments": 6, "frames_per_segment": 3,
                            "streams_per_category": 100}}
        runtimes = {n: runtime_for(n, VARIANTS[n], base, workdir, model_data) for n in names}
        serving = {n: (serve_int8_for_cost(rt) if VARIANTS[n]["inference"] == "int8" else "fp32")
                   for n, rt in runtimes.items()}
        cycles: dict[str, list[dict]] = {n: [] for n in names}
        original = check_module.capture_stream
        for cycle in range(args.cycles + 1):
            for n, rt in runtimes.items():
                check_module.capture_stream = (functools.partial(capture_stream, min_height=100_000)
                                               if VARIANTS[n]["best"] else original)
                summary = run_cycle(rt)
                settled = sum(1 for r in summary.results if r.variant == "thumbnail")
                row = {**summary.to_json(), "thumbnail_settled": settled,
                       "variants": sorted({r.variant for r in summary.results if r.variant})}
                print(f"cycle {cycle} {n}: {row['completed']}/{row['checks']} completed, cpu {row['cpu_seconds']:.1f}s, "
                      f"{row['bytes_downloaded'] / 1e6:.1f} MB, {settled} settled by thumbnail", flush=True)
                if cycle:  # the first cycle warms the stand-in's segment cache and torch
                    cycles[n].append(row)
        check_module.capture_stream = original
        for rt in runtimes.values():
            rt.close()
    rows = []
    for n in names:
        done = [c for c in cycles[n] if c["completed"]]
        cpu = statistics.median(c["cpu_seconds"] / c["completed"] for c in done)
        per_check = statistics.median(c["bytes_downloaded"] / c["checks"] for c in done)
        completed = sum(c["completed"] for c in done)
        settled = sum(c["thumbnail_settled"] for c in done)
        rows.append({"variant": n, "serving": serving[n], "cpu_seconds_per_completed": cpu,
                     "bytes_per_check": per_check, "completed": completed, "thumbnail_settled": settled,
                     "captures_saved_share": settled / completed if completed else 0.0,
                     "video_variants": sorted({v for c in done for v in c["variants"]}),
                     "verdicts": [c["verdicts"] for c in done]})
    ref = next((r for r in rows if r["variant"] == "chosen-fp32"), rows[0])
    best = next((r for r in rows if r["variant"] == "best-fp32"), None)
    print(f"\n{args.scenario}, {args.capture_seconds} s captures, K=6 n=3, median over {args.cycles} measured cycles")
    print(f"{'variant':>18} {'CPU-s/check':>11} {'x chosen-fp32':>13} {'kB/check':>9} {'x fewer than best':>17} "
          f"{'thumb-settled':>13}  video  serving")
    for r in rows:
        fewer = best["bytes_per_check"] / r["bytes_per_check"] if best else float("nan")
        r["cpu_ratio_vs_chosen_fp32"] = ref["cpu_seconds_per_completed"] / r["cpu_seconds_per_completed"]
        r["bytes_ratio_vs_best"] = fewer
        print(f"{r['variant']:>18} {r['cpu_seconds_per_completed']:11.3f} {r['cpu_ratio_vs_chosen_fp32']:13.2f} "
              f"{r['bytes_per_check'] / 1e3:9.1f} {fewer:17.2f} {r['captures_saved_share']:13.2f}  "
              f"{','.join(r['video_variants'])}  {r['serving']}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"scenario": args.scenario, "capture_seconds": args.capture_seconds,
                                     "rows": rows, "cycles": cycles}, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
