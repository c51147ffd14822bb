"""One labelled clip: what the dataset loads, training learns from and evaluation scores.

    clip = Clip(clip_id="12345", label="21779", channel="9001", frames=[frame0, frame1, ...])

A module of its own, so the dataset, training and evaluation share it
without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Clip:
    """One training or evaluation clip: its label and candidate frames in time order."""

    clip_id: str
    label: str  # the category id
    channel: str  # the channel's user id: the train/test split keeps a channel on one side
    frames: list[np.ndarray]  # RGB uint8 HxWx3, e.g. every frame or a few per segment
