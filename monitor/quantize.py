"""Make an int8 copy of a SqueezeNet for serving, and judge whether it may serve.

    int8 = quantize_int8(model, calibration_frames)          # torch.ao FX, x86 (fbgemm) kernels
    guard = Int8Guard.judge(fp32_eval, int8_eval)            # clip accuracy within 0.5 points?
    state = int8.state_dict()                                # saved beside the fp32 weights
    int8 = load_int8(model, state)                           # rebuilt at load time

Post-training static quantisation: observers see the activations of real
frames (`calibration_frames`, prepared by `monitor.frames.preprocess`), then
convolutions run as int8 with per-channel weights. On two cores it scores
frames several times faster than fp32 (bench/inference.py has the figures),
but a weak model can lose accuracy: the trainer measures both on the frozen
test clips when it registers a model, and the daemon serves int8 only when
the card says it kept clip accuracy (`Int8Guard.accepted`).

torch.ao's FX quantisation is deprecated upstream in favour of torchao's
pt2e, which needs torch.compile (a C++ toolchain and seconds of compile per
process) to be fast; FX runs eagerly and ships with torch, so it is used here.
"""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from monitor.frames import INPUT_SIZE, preprocess

log = logging.getLogger(__name__)

BACKEND = "x86"
MAX_ACCURACY_DROP = 0.005  # clip accuracy int8 may lose against fp32 on the test clips: 0.5 points
CALIBRATION_BATCH = 64  # observers cost per call more than per frame: few, large batches


def _prepared(model: nn.Module, size: int = INPUT_SIZE) -> nn.Module:
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx

    torch.backends.quantized.engine = BACKEND
    example = (torch.zeros(1, 3, size, size),)
    fp32 = copy.deepcopy(model).to(memory_format=torch.contiguous_format).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notice and observer range hints
        return prepare_fx(fp32, get_default_qconfig_mapping(BACKEND), example)


def _converted(prepared: nn.Module) -> nn.Module:
    from torch.ao.quantization.quantize_fx import convert_fx

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return convert_fx(prepared).eval()


def quantize_int8(model: nn.Module, calibration_frames: Sequence[np.ndarray], size: int = INPUT_SIZE) -> nn.Module:
    """Return an int8 copy of `model` (fed size x size inputs) calibrated on RGB frames; `model` is left as it was."""
    if not calibration_frames:
        raise ValueError("int8 calibration needs at least one frame")
    prepared = _prepared(model, size)
    with torch.inference_mode():
        for start in range(0, len(calibration_frames), CALIBRATION_BATCH):
            prepared(preprocess(calibration_frames[start : start + CALIBRATION_BATCH], size).contiguous())
    return _converted(prepared)


def load_int8(model: nn.Module, state: dict[str, torch.Tensor], size: int = INPUT_SIZE) -> nn.Module:
    """Rebuild the int8 model of `model`'s architecture and load a saved int8 state dict into it."""
    shell = _converted(_prepared(model, size))
    shell.load_state_dict(state)
    return shell


@dataclass(frozen=True)
class Int8Guard:
    """How int8 did against fp32 on the same clips, and whether it may serve."""

    clips: int
    fp32_clip_accuracy: float
    int8_clip_accuracy: float
    clip_agreement: float  # share of clips whose top class is the same under both
    fp32_frame_accuracy: float
    int8_frame_accuracy: float
    accepted: bool  # int8 lost at most MAX_ACCURACY_DROP of clip accuracy

    @classmethod
    def judge(cls, labels: Sequence[str], fp32_top: Sequence[str], int8_top: Sequence[str],
              fp32_frame_accuracy: float, int8_frame_accuracy: float) -> Int8Guard:
        """Compare the two models' top class per clip against the labels."""
        n = len(labels)
        if not n or len(fp32_top) != n or len(int8_top) != n:
            raise ValueError("the guard needs the same non-empty clips under both models")
        acc32 = sum(a == y for a, y in zip(fp32_top, labels, strict=True)) / n
        acc8 = sum(a == y for a, y in zip(int8_top, labels, strict=True)) / n
        agree = sum(a == b for a, b in zip(fp32_top, int8_top, strict=True)) / n
        return cls(n, acc32, acc8, agree, float(fp32_frame_accuracy), float(int8_frame_accuracy),
                   accepted=acc8 >= acc32 - MAX_ACCURACY_DROP - 1e-12)

    def to_json(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}
