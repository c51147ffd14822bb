"""Write one PNG showing a frame of every channel of a world, labelled with what it declares and shows.

    /work/main/.venv/bin/python bench/worlds_contact_sheet.py world-b /tmp/world-b.png [--frame 25] [--run live]

The scenario is any name `python -m monitor.sim --scenario` takes (world-a,
world-b, holdout-a, holdout-b, default, small) or a JSON file. Frames are
rendered straight from the compositor (no server, no encoder), so this shows
the look before compression; --cache-dir reuses played game footage.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.sim.compose import ChannelVideo  # noqa: E402
from monitor.sim.worlds import load_scenario  # noqa: E402

TILE = (384, 216)
LABEL = 30


def label(scenario, channel) -> tuple[str, str]:
    """Return two lines: login, and declared -> shown (with the look's family or scene kind)."""
    from monitor.sim import looks

    truth = scenario.truth(channel.login)
    declared = scenario.category(channel.declared_game_id).name
    shown = channel.shows if truth.shown_game_id is None else scenario.category(truth.shown_game_id).name
    kind = looks.scene_kind(scenario.world, channel.seed, scenario.rom_for(channel) is None) if scenario.world else ""
    mark = "MISLABELED " if truth.mislabeled else ""
    return channel.login, f"{mark}{declared[:18]} -> {shown[:18]} {kind}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario")
    parser.add_argument("out", type=Path)
    parser.add_argument("--frame", type=int, default=25, help="which frame of each run to show")
    parser.add_argument("--run", default="live", help='"live" or "clip-N"')
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()
    scenario = load_scenario(args.scenario)
    channels = scenario.channels
    cols = 6
    rows = math.ceil(len(channels) / cols)
    sheet = Image.new("RGB", (cols * TILE[0], rows * (TILE[1] + LABEL)), (12, 12, 14))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=12)
    started = time.perf_counter()
    for i, channel in enumerate(channels):
        video = ChannelVideo(scenario, channel, args.run, args.frame + 1, args.cache_dir)
        rgb = video.frame(args.frame)
        assert rgb.shape == (720, 1280, 3) and rgb.dtype == np.uint8
        x, y = (i % cols) * TILE[0], (i // cols) * (TILE[1] + LABEL)
        sheet.paste(Image.fromarray(np.asarray(rgb)).resize(TILE, Image.BILINEAR), (x, y + LABEL))
        for k, text in enumerate(label(scenario, channel)):
            draw.text((x + 4, y + 2 + 13 * k), text, fill=(255, 120, 120) if "MISLABELED" in text else (230, 230, 230),
                      font=font)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"{args.out}: {len(channels)} channels of {args.scenario} in {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
