"""Draw a contact sheet: one PNG showing every sampled frame of a check, labelled, for a human to judge.

    png = contact_sheet(frames, title="alice: declares Just Chatting, model sees 21779 (93%)")
    write_atomic(path, png)

Frames (RGB uint8, as monitor.retain keeps them) are shrunk to TILE pixels
and laid out COLUMNS to a row in time order, each with its position; the
title goes on a band above. Text is drawn in ASCII: names from Helix may hold
any character, and the built-in font has no glyph for most of them.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

TILE = 160  # a 224 px frame at 160: enough to tell a game from a camera, ~4x smaller than the frames
COLUMNS = 6
GAP = 4
TITLE_HEIGHT = 22
BACKGROUND = (24, 24, 28)
TEXT = (235, 235, 235)
PNG_LEVEL = 6  # written once per clip, read often: smaller beats faster here


def contact_sheet(frames: Sequence[np.ndarray], title: str = "") -> bytes:
    """Return the PNG bytes of a grid of the frames, each numbered, under a title line."""
    if not frames:
        raise ValueError("a contact sheet needs at least one frame")
    columns = min(COLUMNS, len(frames))
    rows = -(-len(frames) // columns)
    width = columns * TILE + (columns + 1) * GAP
    height = TITLE_HEIGHT + rows * TILE + (rows + 1) * GAP
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    draw.text((GAP, 5), _ascii(title), fill=TEXT, font=font)
    for position, frame in enumerate(frames):
        row, column = divmod(position, columns)
        x = GAP + column * (TILE + GAP)
        y = TITLE_HEIGHT + GAP + row * (TILE + GAP)
        tile = Image.fromarray(np.ascontiguousarray(frame)).convert("RGB")
        tile.thumbnail((TILE, TILE))
        sheet.paste(tile, (x, y))
        label = f"#{position + 1}"
        # A dark box under the number keeps it readable on any frame.
        box = draw.textbbox((x + 3, y + 2), label, font=font)
        draw.rectangle((box[0] - 2, box[1] - 1, box[2] + 2, box[3] + 1), fill=BACKGROUND)
        draw.text((x + 3, y + 2), label, fill=TEXT, font=font)
    out = io.BytesIO()
    sheet.save(out, format="PNG", compress_level=PNG_LEVEL)
    return out.getvalue()


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii")[:200]
