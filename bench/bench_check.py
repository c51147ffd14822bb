"""Time one check end to end against the stand-in: capture, decode, inference.

    python bench/bench_check.py [--checks 5] [--capture-seconds 12]

Uses an untrained model (the weights do not change the cost) and the default
K=6, n=3. Prints the median of each stage over the checks.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from monitor.check import check_stream
from monitor.classify import build_model
from monitor.config import load_config
from monitor.cycle import Runtime
from monitor.model_registry import ModelRegistry
from monitor.sim import StandIn, small_scenario
from monitor.store import Store
from trainer.registry import save_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checks", type=int, default=5)
    parser.add_argument("--capture-seconds", type=int, default=12)
    args = parser.parse_args()
    scenario = small_scenario()
    classes = [c.id for c in scenario.categories]
    with tempfile.TemporaryDirectory() as tmp, StandIn(scenario) as sim:
        cfg = load_config(environ={}, overrides={
            "twitch": sim.twitch_config(),
            "categories": {"watch": classes, "chatting": "509658"},
            "monitor": {"capture_seconds": args.capture_seconds},
            "storage": {"database_url": f"sqlite:///{tmp}/b.db", "data_dir": f"{tmp}/data"},
        })
        Store(cfg.storage.database_url).upgrade()
        model_id = save_model(Path(cfg.storage.data_dir), build_model(cfg.model.arch, len(classes), "none"),
                              {"classes": classes, "arch": cfg.model.arch, "segments": cfg.monitor.segments,
                               "frames_per_segment": cfg.monitor.frames_per_segment})
        ModelRegistry(cfg.storage.data_dir).activate(model_id)
        rt = Runtime(cfg)
        login = scenario.channels[0].login
        stream = rt.helix.stream_of(login)
        classifier = rt.classifier()
        check_stream(rt.check_context, stream, classifier)  # warm: stand-in cache, torch
        rows = []
        for _ in range(args.checks):
            t0 = time.monotonic()
            r = check_stream(rt.check_context, stream, classifier).record
            rows.append((time.monotonic() - t0, r.capture_seconds, r.decode_seconds, r.inference_seconds,
                         r.bytes_downloaded))
        rt.close()
    med = [statistics.median(col) for col in zip(*rows, strict=True)]
    print(f"one check ({args.capture_seconds}s capture, K=6 n=3), median of {args.checks}: "
          f"total {med[0]:.2f}s = capture {med[1]:.2f}s + decode {med[2]:.2f}s + inference {med[3]:.2f}s; "
          f"{med[4] / 1e6:.2f} MB downloaded")


if __name__ == "__main__":
    main()
