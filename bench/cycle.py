"""Channels checked per hour by one run process, capture concurrency swept, against a crowd of stand-in channels.

    python bench/cycle.py [--channels 120] [--workers 1,2,4,8] [--capture-seconds 12]
    python bench/cycle.py --thumbnail-only --channels 120      # screening on thumbnails alone
    python bench/cycle.py --workers 4 --rss-cycles 20           # resident memory over many cycles

The crowd: the default scenario's channels, cloned with new logins and seeds
until there are `--channels` (each clone has its own pictures). The stand-in
runs as its own process (`python -m monitor.sim`) so its rendering is not
counted as the run process's CPU; on a 2-core machine it still competes for
the cores while it renders, so every setting gets a warm-up cycle first
(which fills the stand-in's segment cache) before the first setting is measured.

Per setting, one measured cycle (`monitor.cycle.run_cycle`, what `run --once`
runs): checks per hour from its wall time, CPU-s per completed check, and the
CPU-bound ceiling 3600 * cores / CPU-s-per-check. Where the rate stops rising
with more capture workers, the table names what it ran into: the cores (CPU
time ~ wall * cores) or the capture (the network/stand-in).

`--thumbnail-only`: each check fetches the thumbnail and scores it, nothing
more (monitor.thumbnail); it reports channels screened per hour, CPU-s per
thumbnail check and the share a confident agreement does not settle (those
would need video). An untrained model settles nothing: `--model-data` gives
a trained one. The model serves int8 (made from thumbnails for cost only
when it has no accepted int8 copy), as bench/check.py does.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from check import StandInProcess, serve_int8_for_cost, untrained_model  # noqa: E402

from monitor.check import CheckResult, _prescreen  # noqa: E402
from monitor.config import load_config  # noqa: E402
from monitor.cycle import Runtime, run_cycle  # noqa: E402
from monitor.memory import rss_bytes  # noqa: E402
from monitor.sim.scenario import Scenario, default_scenario  # noqa: E402
from monitor.store import Store  # noqa: E402
from monitor.verdict import Outcome  # noqa: E402


def crowd(channels: int) -> Scenario:
    """The default scenario with its channels cloned (new login, new seed) up to `channels`."""
    base = default_scenario()
    out = list(base.channels)
    i = 0
    while len(out) < channels:
        ch = base.channels[i % len(base.channels)]
        n = len(out)
        out.append(dataclasses.replace(ch, login=f"{ch.login[:14]}_{n}", user_id=str(900_000 + n),
                                       display_name=f"{ch.display_name[:14]}_{n}", seed=ch.seed + 7919 * n,
                                       viewer_count=max(1, ch.viewer_count - n)))
        i += 1
    return dataclasses.replace(base, channels=tuple(out))


def thumbnail_only(ctx, stream, classifier) -> CheckResult:
    """A check that only scores the thumbnail: settled (agree) or 'unsure' (would need video)."""
    result = CheckResult.of(stream, Outcome.UNSURE, model_id=classifier.model_id, frames_expected=1)
    if not _prescreen(ctx, stream, classifier, result):
        result.record.outcome = Outcome.UNSURE
        result.variant = "needs-video"
    ctx.store.record(result.record, confirmations=ctx.monitor.confirmations)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--channels", type=int, default=120)
    parser.add_argument("--workers", default="1,2,4,8", help="capture_workers values to sweep")
    parser.add_argument("--capture-seconds", type=int, default=12)
    parser.add_argument("--thumbnail-only", action="store_true")
    parser.add_argument("--rss-cycles", type=int, default=0, help="measured cycles per setting (RSS tracked)")
    parser.add_argument("--model-data", type=Path)
    parser.add_argument("--json", type=Path, default=Path("bench/results/cycle.json"))
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        scenario_file = workdir / "crowd.json"
        crowd(args.channels).to_file(scenario_file)
        with StandInProcess(str(scenario_file), workdir) as standin:
            classes = standin["categories"]["watch"]
            model_data = args.model_data or workdir / "data"
            if args.model_data is None:
                untrained_model(model_data, classes)
            for setting, workers in enumerate(int(w) for w in args.workers.split(",")):
                cfg = load_config(environ={}, overrides={
                    "twitch": standin["twitch"], "categories": standin["categories"],
                    "monitor": {"capture_seconds": args.capture_seconds, "capture_workers": workers,
                                "streams_per_category": 10_000, "thumbnail_prescreen": args.thumbnail_only},
                    "storage": {"database_url": f"sqlite:///{workdir}/w{workers}.db", "data_dir": str(model_data)},
                    "model": {"pretrained": "none"}, "retain": {"enabled": False},
                })
                Store(cfg.storage.database_url).upgrade()
                rt = Runtime(cfg)
                serving = serve_int8_for_cost(rt)
                check = thumbnail_only if args.thumbnail_only else None
                kwargs = {"check": check} if check else {}
                rss = []
                # The first setting's first cycle warms the stand-in's cache (and torch); later ones need none.
                for cycle in range(0 if setting else -1, max(1, args.rss_cycles)):
                    started = time.monotonic()
                    summary = run_cycle(rt, **kwargs)
                    wall = time.monotonic() - started
                    rss.append(rss_bytes())
                    print(f"workers {workers} cycle {cycle}: {summary.completed}/{summary.checks} in {wall:.1f}s, "
                          f"cpu {summary.cpu_seconds:.1f}s, rss {rss[-1] / 2**20:.0f} MB", flush=True)
                    if cycle >= 0:
                        last = summary
                rt.close()
                done = last.completed or 1
                cpu_per = last.cpu_seconds / done
                per_hour = 3600 * last.checks / last.wall_seconds
                needs_video = sum(1 for r in last.results if r.variant == "needs-video")
                rows.append({
                    "workers": workers, "serving": serving, "checks": last.checks, "completed": last.completed,
                    "wall_seconds": last.wall_seconds, "cpu_seconds": last.cpu_seconds,
                    "checks_per_hour": per_hour, "cpu_seconds_per_check": cpu_per,
                    "cpu_bound_ceiling_per_hour": 3600 * cores / cpu_per,
                    "core_utilisation": last.cpu_seconds / (last.wall_seconds * cores),
                    "needs_video_share": needs_video / last.checks if args.thumbnail_only else None,
                    "rss_mb": [round(r / 2**20) for r in rss], "bytes_per_check": last.bytes_downloaded / last.checks,
                })
    best = max(rows, key=lambda r: r["checks_per_hour"])
    print(f"\n{args.channels} channels, {'thumbnail only' if args.thumbnail_only else f'{args.capture_seconds} s captures'}, "
          f"{cores} cores")
    print(f"{'workers':>7} {'checks/h':>9} {'CPU-s/check':>11} {'CPU ceiling/h':>13} {'cores busy':>10} {'RSS MB':>14}"
          f"{'  needs video' if args.thumbnail_only else ''}")
    for r in rows:
        print(f"{r['workers']:>7} {r['checks_per_hour']:9.0f} {r['cpu_seconds_per_check']:11.3f} "
              f"{r['cpu_bound_ceiling_per_hour']:13.0f} {r['core_utilisation']:10.2f} "
              f"{r['rss_mb'][0]:>6}..{max(r['rss_mb']):<6}"
              + (f"  {r['needs_video_share']:.2f}" if args.thumbnail_only else ""))
    limit = "the cores" if best["core_utilisation"] > 0.8 else "capture (network / stand-in), not the cores"
    print(f"best: {best['checks_per_hour']:.0f}/h at {best['workers']} workers; limit there: {limit} "
          f"({best['core_utilisation']:.0%} of {cores} cores busy in the run process)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"channels": args.channels, "thumbnail_only": args.thumbnail_only,
                                     "capture_seconds": args.capture_seconds, "cores": cores, "rows": rows,
                                     "limit": limit}, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
