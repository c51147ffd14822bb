"""Train, evaluate and register a model: what `twitchwatch train` and `retrain` do.

    result = train_and_register(cfg, epochs=8)     # the JSON `train --json` prints

The test set is the dataset's frozen test clips; validation (early stopping,
temperature) comes from a few train channels per class, never from test.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable

from monitor import __version__
from monitor.classify import Classifier
from monitor.config import Config
from monitor.frames import INPUT_SIZE
from monitor.models import ModelRegistry
from trainer.dataset import Dataset, load_dataset
from trainer.registry import save_model
from trainer.train import Clip, evaluate, train_classifier

VAL_FRACTION = 0.2


def split_validation(clips: list[Clip], fraction: float, seed: int) -> tuple[list[Clip], list[Clip]]:
    """Hold out whole channels per class for validation (at least one where a class has 3+)."""
    by_class: dict[str, dict[str, list[Clip]]] = defaultdict(lambda: defaultdict(list))
    for clip in clips:
        by_class[clip.label][clip.channel].append(clip)
    rng = random.Random(seed)
    train: list[Clip] = []
    val: list[Clip] = []
    for label in sorted(by_class):
        channels = sorted(by_class[label])
        rng.shuffle(channels)
        n_val = max(1, round(fraction * len(channels))) if len(channels) >= 3 else 0
        for i, channel in enumerate(channels):
            (val if i < n_val else train).extend(by_class[label][channel])
    return train, val


def train_and_register(
    cfg: Config,
    *,
    epochs: int | None = None,
    activate: bool = True,
    say: Callable[[str], None] = print,
    dataset: Dataset | None = None,
    segments: int | None = None,
    frames_per_segment: int | None = None,
    max_seconds: float | None = None,
) -> dict:
    """Train on the dataset, evaluate on its frozen test clips, register (and activate) the model."""
    data = dataset or load_dataset(cfg.data_path)
    k = segments or cfg.monitor.segments
    n = frames_per_segment or cfg.monitor.frames_per_segment
    train, val = split_validation(data.train, VAL_FRACTION, cfg.train.seed)
    say(f"training {cfg.model.arch} on {len(train)} clips ({len(val)} validation, {len(data.test)} test), "
        f"classes {', '.join(data.classes)}, K={k} n={n}")
    started = time.monotonic()
    result = train_classifier(
        train, val, data.classes,
        arch=cfg.model.arch, pretrained=cfg.model.pretrained, segments=k, frames_per_segment=n,
        epochs=epochs or cfg.train.epochs, batch_size=cfg.train.batch_size,
        learning_rate=cfg.train.learning_rate, seed=cfg.train.seed, log=say, max_seconds=max_seconds,
    )
    classifier = Classifier.from_model(result.model, data.classes, arch=cfg.model.arch,
                                       temperature=result.temperature, segments=k, frames_per_segment=n)
    test_metrics = evaluate(classifier, data.test) if data.test else {}
    train_metrics = evaluate(classifier, train)
    card = {
        "classes": data.classes, "arch": cfg.model.arch, "segments": k, "frames_per_segment": n,
        "input_size": INPUT_SIZE, "preprocessing": "monitor.frames.preprocess",
        "pretrained": cfg.model.pretrained, "dataset_hash": data.dataset_hash, "test_hash": data.test_hash,
        "temperature": result.temperature, "train_seconds": round(time.monotonic() - started, 1),
        "code_version": __version__, "history": result.history,
        "metrics": {"test": test_metrics, "train": train_metrics, "validation": result.metrics},
        "test_accuracy": test_metrics.get("clip_accuracy"),
        "test_frame_accuracy": test_metrics.get("frame_accuracy"),
        "train_accuracy": train_metrics.get("clip_accuracy"),
        "counts": {"train": len(train), "validation": len(val), "test": len(data.test)},
    }
    model_id = save_model(cfg.data_path, result.model, card)
    if activate:
        ModelRegistry(cfg.data_path).activate(model_id)
    say(f"model {model_id}: test clip accuracy {_pct(card['test_accuracy'])}, "
        f"frame accuracy {_pct(card['test_frame_accuracy'])}, train {_pct(card['train_accuracy'])}")
    return {
        "model_id": model_id, "promoted": activate,
        "test_accuracy": card["test_accuracy"], "test_frame_accuracy": card["test_frame_accuracy"],
        "train_accuracy": card["train_accuracy"], "classes": data.classes,
        "train_seconds": card["train_seconds"], "temperature": result.temperature,
    }


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"
