"""A toy problem for training tests: three clearly different synthetic scenes, as frames or a built dataset.

    from toydata import CLASSES, toy_config, toy_frame, write_toy_dataset   # tests/ is on sys.path

A dataset directory written through trainer.dataset's own store (5 channels
per class, one per class frozen in test) trains in seconds, and a model
trained on it for 4 epochs beats an untrained one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from cli_helpers import write_config

from trainer.dataset import DatasetStore

CLASSES = ("21779", "509658", "33214")


def toy_frame(kind: int, rs: np.random.Generator) -> np.ndarray:
    """Return a noisy frame of one of four clearly different scenes (0, 1, 2; 3 for a game of no class)."""
    h, w = 72, 128
    img = rs.integers(0, 40, (h, w, 3), dtype=np.uint8)
    if kind == 0:
        img[..., 0] += 180  # red
    elif kind == 1:
        img[:, ::16, 1] = img[:, 1::16, 1] = 230  # green stripes
    elif kind == 2:
        yy, xx = np.mgrid[:h, :w]
        img[(yy // 12 + xx // 12) % 2 == 1] = (40, 40, 220)  # blue checkerboard
    else:
        yy, xx = np.mgrid[:h, :w]
        img[((yy + xx) // 10) % 2 == 1] = (230, 220, 30)  # yellow diagonal bands: a fourth scene
    return img


def write_toy_dataset(data_dir: Path, classes: tuple[str, ...] = CLASSES, channels: int = 5,
                      test_channels: int = 1, frames: int = 4, seed: int = 0,
                      shuffle_train_labels: bool = False) -> None:
    """Write a built dataset (clips, manifest, frozen split) with one clip per channel.

    `shuffle_train_labels` permutes the labels of the training clips (frames
    untouched) and leaves the test clips as they are: the same frozen test
    set, and test hash, as the dataset written without it.
    """
    store = DatasetStore(data_dir)
    rs = np.random.default_rng(seed)
    labels = _shuffled_train_labels(classes, channels, test_channels, seed) if shuffle_train_labels else {}
    sides: dict[str, str] = {}
    test_clips: list[str] = []
    digest = hashlib.sha256()
    for kind, category in enumerate(classes):
        for c in range(channels):
            channel, clip_id = f"{category}-ch{c}", f"clip-{category}-{c}"
            record = {"clip_id": clip_id, "channel_id": channel, "channel_login": f"toy{category}x{c}",
                      "category": labels.get((kind, c), category), "status": "ok", "frames": frames}
            rows = store.commit_clip(record, [toy_frame(kind, rs) for _ in range(frames)], list(range(frames)))
            sides[channel] = "test" if c < test_channels else "train"
            if c < test_channels:
                test_clips.append(clip_id)
                for row in rows:
                    digest.update(f"{clip_id}:{row['position']}:{row['sha256']}\n".encode())
    store.write_split({"seed": seed, "test_fraction": 0.25, "channels": sides, "test_clips": sorted(test_clips),
                       "test_hash": digest.hexdigest()})


def _shuffled_train_labels(classes: tuple[str, ...], channels: int, test_channels: int,
                           seed: int) -> dict[tuple[int, int], str]:
    """Return {(scene, channel): label} for the training clips, the labels permuted among them."""
    slots = [(kind, c) for kind in range(len(classes)) for c in range(test_channels, channels)]
    order = np.random.default_rng(seed + 1).permutation(len(slots))
    return {slot: classes[slots[i][0]] for slot, i in zip(slots, order, strict=True)}


def toy_config(path: Path, data_dir: Path) -> Path:
    """Write a config that trains on data_dir quickly (K=2, n=1, 4 epochs of 24 clips, from scratch)."""
    return write_config(path, {
        "storage": {"database_url": f"sqlite:///{path.parent / 'tw.db'}", "data_dir": str(data_dir)},
        "model": {"pretrained": "none"},
        "monitor": {"segments": 2, "frames_per_segment": 1},
        # The toy scenes' epochs were tuned at 224 px and without stream layouts, whose painted camera
        # scenes take 2 epochs more to learn on 12 clips (tests/trainer/test_train.py and test_layouts.py
        # cover 128 px and the layouts).
        "train": {"epochs": 4, "learning_rate": 3e-4, "batch_size": 4, "seed": 0, "clips_per_epoch": 24,
                  "input_size": 224, "layout_probability": 0.0},
    })
