"""Quantise a trained model to int8 and measure it against fp32 on the frozen test clips.

    state, guard = int8_for(classifier, calibration=data.train, test=data.test, fp32=test_evaluation)
    guard.accepted      # the daemon serves int8 only then (model.inference = "int8")

Calibration uses a few training clips' test-mode frames (no labels); the
judgement uses the same frozen test clips as the card's test accuracy, so the
card shows both figures side by side.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from monitor.classify import Classifier
from monitor.frames import sample_indices
from monitor.quantize import Int8Guard, quantize_int8
from trainer.clip import Clip
from trainer.evaluate import Evaluation, evaluate_model

CALIBRATION_CLIPS = 8


def calibration_frames(classifier: Classifier, clips: Sequence[Clip], limit: int = CALIBRATION_CLIPS) -> list:
    """Return the test-mode sampled frames of up to `limit` clips, spread over the list."""
    with_frames = [c for c in clips if c.frames]
    step = max(1, len(with_frames) // limit)
    frames: list[np.ndarray] = []
    for clip in with_frames[::step][:limit]:
        picks = sorted(set(sample_indices(len(clip.frames), classifier.segments, classifier.frames_per_segment)))
        frames.extend(clip.frames[i] for i in picks)
    return frames


def int8_for(classifier: Classifier, *, calibration: Sequence[Clip], test: Sequence[Clip],
             fp32: Evaluation | None = None) -> tuple[dict[str, torch.Tensor], Int8Guard]:
    """Return the int8 model's state dict and how it did against fp32 on `test`."""
    frames = calibration_frames(classifier, calibration) or calibration_frames(classifier, test)
    int8 = quantize_int8(classifier.model, frames, classifier.input_size)
    fp32 = fp32 or evaluate_model(classifier, test)
    served = dataclasses.replace(classifier, serving="int8", serving_model=int8)
    quantised = evaluate_model(served, test)
    guard = Int8Guard.judge([o.label for o in fp32.outcomes], [o.predicted for o in fp32.outcomes],
                            [o.predicted for o in quantised.outcomes], fp32.frame_accuracy, quantised.frame_accuracy)
    return int8.state_dict(), guard
