"""Train, evaluate and register a model: what `twitchwatch train`, `retrain` and `experiment` do.

    result = train_and_register(cfg, TrainingSpec.from_config(cfg, epochs=8))   # what `train --json` prints
    spec = TrainingSpec.from_config(cfg, segments=3, frames_per_segment=3)
    trained = train_model(cfg.data_path, load_dataset(cfg.data_path), spec)
    trained.test.correctness()                     # per test clip, for paired comparisons

The test set is the dataset's frozen test clips; validation (early stopping,
temperature) comes from a few train channels per class, never from test.
Test metrics (trainer.evaluate) go into the model card together with the
confusion matrix PNG; train accuracy is the trainer's own measurement on the
training clips (the same test-mode sampling), not a second pass over them.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from monitor.config import Config
from monitor.model_registry import ModelRegistry
from monitor.verdict import GAMEPLAY
from trainer import distributed
from trainer.clip import Clip
from trainer.dataset import Dataset, load_dataset
from trainer.evaluate import Evaluation, evaluate_model
from trainer.int8 import int8_for
from trainer.registry import save_model
from trainer.train import TrainingSpec, TrainResult, train_classifier

VAL_FRACTION = 0.2


@dataclass
class TrainedModel:
    """A model trained, evaluated on the test clips and saved in the registry (not activated)."""

    model_id: str
    card: dict
    test: Evaluation | None  # None when the dataset has no test clips

    def summary(self, promoted: bool) -> dict:
        """Return the JSON fields INTERFACE.md promises for `train --json`, and a few more."""
        card = self.card
        return {
            "model_id": self.model_id, "promoted": promoted,
            "test_accuracy": card["test_accuracy"], "test_frame_accuracy": card["test_frame_accuracy"],
            "train_accuracy": card["train_accuracy"], "classes": card["classes"],
            "ece_before": card["ece_before"], "ece_after": card["ece_after"],
            "test_nll": card["test_nll"], "train_frame_accuracy": card["train_frame_accuracy"],
            "segments": card["segments"], "frames_per_segment": card["frames_per_segment"],
            "train_seconds": card["train_seconds"], "temperature": card["temperature"],
        }


def split_validation(clips: list[Clip], fraction: float, seed: int) -> tuple[list[Clip], list[Clip]]:
    """Hold out whole channels per class for validation (at least one where a class has 3+).

    GAMEPLAY clips (games that are no class) all train: validation scores classes."""
    by_class: dict[str, dict[str, list[Clip]]] = defaultdict(lambda: defaultdict(list))
    train: list[Clip] = []
    val: list[Clip] = []
    for clip in clips:
        if clip.label == GAMEPLAY:
            train.append(clip)
        else:
            by_class[clip.label][clip.channel].append(clip)
    rng = random.Random(seed)
    for label in sorted(by_class):
        channels = sorted(by_class[label])
        rng.shuffle(channels)
        n_val = max(1, round(fraction * len(channels))) if len(channels) >= 3 else 0
        for i, channel in enumerate(channels):
            (val if i < n_val else train).extend(by_class[label][channel])
    return train, val


def train_model(
    data_dir: str | Path, data: Dataset, spec: TrainingSpec, *, say: Callable[[str], None] = print
) -> TrainedModel:
    """Train on the dataset's train clips, evaluate on its frozen test clips, save; do not activate."""
    k, n = spec.segments, spec.frames_per_segment
    train, val = split_validation(data.train, VAL_FRACTION, spec.seed)
    say(f"training {spec.arch} on {len(train)} clips ({len(val)} validation, {len(data.test)} test), "
        f"classes {', '.join(data.classes)}, K={k} n={n}")
    result = train_classifier(train, val, data.classes, spec, log=say)
    return register_trained(data_dir, data, spec, result, say=say,
                            counts={"train": len(train), "validation": len(val), "test": len(data.test)})


def register_trained(
    data_dir: str | Path, data: Dataset, spec: TrainingSpec, result: TrainResult, *, counts: dict[str, int],
    say: Callable[[str], None] = print, **card: object,
) -> TrainedModel:
    """Evaluate a trained model on the dataset's frozen test clips and save it with its card; do not activate.

    `counts` are the clips it was trained, validated and tested on; `card`
    adds fields to the model card (trainer.distributed adds its world).
    """
    k, n = spec.segments, spec.frames_per_segment
    started = time.monotonic()
    test = evaluate_model(result.classifier(), data.test) if data.test else None
    card = result.card(
        pretrained=spec.pretrained, dataset_hash=data.dataset_hash, test_hash=data.test_hash,
        evaluate_seconds=round(time.monotonic() - started, 1),
        metrics={
            "test": test.to_json() if test else None,
            "train": {"clip_accuracy": result.metrics["train_accuracy"],
                      "frame_accuracy": result.metrics["train_frame_accuracy"]},
            "validation": result.metrics,
        },
        test_accuracy=test.clip_accuracy if test else None,
        drift_reference=test.drift_reference() if test else None,  # what `twitchwatch drift` compares with
        test_frame_accuracy=test.frame_accuracy if test else None,
        test_nll=test.nll if test else None,
        ece_before=test.ece_before if test else None,
        ece_after=test.ece_after if test else None,
        train_accuracy=result.metrics["train_accuracy"],
        train_frame_accuracy=result.metrics["train_frame_accuracy"],
        counts=counts,
        **card,
    )
    int8_state = None
    if test:
        int8_state, guard = int8_for(result.classifier(), calibration=data.train, test=data.test, fp32=test)
        card["int8"] = guard.to_json()
        say(f"int8: test clip accuracy {_pct(guard.int8_clip_accuracy)} against fp32 "
            f"{_pct(guard.fp32_clip_accuracy)} ({'serves' if guard.accepted else 'rejected: fp32 serves'})")
    model_id = save_model(data_dir, result.model, card, confusion=test.confusion() if test else None,
                          int8_state=int8_state)
    card = ModelRegistry(data_dir).card(model_id)  # as stored: model_id, created_at, code_version
    say(f"model {model_id} (K={k} n={n}): test clip accuracy {_pct(card['test_accuracy'])}, "
        f"frame accuracy {_pct(card['test_frame_accuracy'])}, train {_pct(card['train_accuracy'])}, "
        f"ECE {_num(card['ece_before'])} -> {_num(card['ece_after'])} at T={result.temperature:.2f}")
    return TrainedModel(model_id=model_id, card=card, test=test)


def train_and_register(
    cfg: Config,
    spec: TrainingSpec | None = None,
    *,
    activate: bool = True,
    say: Callable[[str], None] = print,
    dataset: Dataset | None = None,
) -> dict | None:
    """Train on the dataset, evaluate on its frozen test clips, register (and activate) the model.

    Without a spec, the config's (`TrainingSpec.from_config(cfg)`). Under
    torchrun (WORLD_SIZE > 1) each rank trains on its shard
    (trainer.distributed); only rank 0 registers, and the others return None.
    """
    spec = spec or TrainingSpec.from_config(cfg)
    world = distributed.World.from_env()
    if world.size > 1:
        return distributed.train_and_register(cfg, spec, world, activate=activate, say=say)
    data = dataset or load_dataset(cfg.data_path)
    trained = train_model(cfg.data_path, data, spec, say=say)
    if activate:
        ModelRegistry(cfg.data_path).activate(trained.model_id)
        say(f"model {trained.model_id} is now the active model")
    return trained.summary(promoted=activate)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
