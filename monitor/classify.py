"""Build SqueezeNet classifiers and score sampled frames with them.

    model = build_model("squeezenet1_1", num_classes=8, pretrained="none")
    clf = Classifier.from_model(model, classes=["21779", "509658", ...])
    clip = clf.score(sampled.frames)
    clip.scores            # {"21779": 0.81, ...}: mean over frames of softmax(logits / T)

The clip's score is TSN's segmental consensus: the frames' class
probabilities averaged. `temperature` is fitted on validation data by the
trainer so that the averaged probability can be read as a confidence.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision import models as tvm

from monitor.config import DEFAULT_FRAMES_PER_SEGMENT, DEFAULT_SEGMENTS
from monitor.errors import ModelError
from monitor.frames import INPUT_SIZE, preprocess

log = logging.getLogger(__name__)

ARCHS = ("squeezenet1_0", "squeezenet1_1")
_BUILDERS = {"squeezenet1_0": tvm.squeezenet1_0, "squeezenet1_1": tvm.squeezenet1_1}
_WEIGHTS = {
    "squeezenet1_0": tvm.SqueezeNet1_0_Weights.IMAGENET1K_V1,
    "squeezenet1_1": tvm.SqueezeNet1_1_Weights.IMAGENET1K_V1,
}
IMAGENET_CLASSES = 1000
SCORE_BATCH = 64  # frames per forward pass when scoring: bounds memory, not results


def build_model(arch: str, num_classes: int, pretrained: str = "none") -> nn.Module:
    """Return a SqueezeNet with a `num_classes`-way head, from "imagenet", "none" or a weights path.

    The head is torchvision's (dropout, 1x1 conv, pooling) without the ReLU
    that follows the last conv: with it, a head whose outputs all go
    negative emits all-zero logits, the softmax is uniform, the loss sits at
    ln(num_classes) and no gradient flows back, the stall SqueezeNet is
    known for when trained on a new task. Without it the logits are linear
    in the features and can never all be clamped.
    """
    if arch not in ARCHS:
        raise ModelError(f"unknown architecture {arch!r}: expected one of {', '.join(ARCHS)}")
    if num_classes < 1:
        raise ModelError(f"a classifier needs at least one class, got {num_classes}")
    model = _BUILDERS[arch](weights=None, num_classes=num_classes)
    model.classifier[2] = nn.Identity()
    if pretrained == "none":
        return _channels_last(model)
    if pretrained == "imagenet":
        state = _imagenet_state(arch)
        source = f"torchvision's {_WEIGHTS[arch]}"
    else:
        state = _file_state(Path(pretrained))
        source = str(pretrained)
    _load_backbone(model, state, num_classes, source)
    return _channels_last(model)


def _channels_last(model: nn.Module) -> nn.Module:
    """Store conv weights channels-last, matching `preprocess`: about 2x faster on CPU, same results."""
    return model.to(memory_format=torch.channels_last)


def _imagenet_state(arch: str) -> dict[str, torch.Tensor]:
    """Load torchvision's ImageNet weights through its hub cache (TORCH_HOME/hub/checkpoints)."""
    weights = _WEIGHTS[arch]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    try:
        return weights.get_state_dict(progress=False, weights_only=True)
    except Exception as exc:  # urllib, OSError, unpickling: all mean "no usable file"
        raise ModelError(
            f"cannot load ImageNet weights for {arch} ({type(exc).__name__}: {exc}): "
            f"place {weights.url} at {cached}, or set model.pretrained = \"none\""
        ) from None


def _file_state(path: Path) -> dict[str, torch.Tensor]:
    """Read a state dict file, or the `model` entry of a twitchwatch checkpoint."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"weights file {path} does not exist") from None
    except Exception as exc:
        raise ModelError(f"weights file {path} is unreadable ({type(exc).__name__}: {exc})") from None
    if isinstance(data, dict) and isinstance(data.get("model"), dict):
        data = data["model"]
    if not isinstance(data, dict) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise ModelError(f"weights file {path} holds no state dict")
    return data


def _load_backbone(model: nn.Module, state: dict[str, torch.Tensor], num_classes: int, source: str) -> None:
    """Load `state` into model; a 1000-class ImageNet head is dropped and the new head kept."""
    head = state.get("classifier.1.weight")
    if head is not None and head.shape[0] == IMAGENET_CLASSES and num_classes != IMAGENET_CLASSES:
        state = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:
        raise ModelError(f"weights from {source} do not fit this model: {_first_line(exc)}") from None
    missing = [k for k in missing if not k.startswith("classifier.")]
    if missing or unexpected:
        raise ModelError(
            f"weights from {source} do not fit this model: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )


def _first_line(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:2])


@dataclass
class ClipScores:
    """The class probabilities of one clip and of each of its frames."""

    scores: dict[str, float]  # class id -> probability: mean over frames of softmax(logits / T)
    frame_probs: np.ndarray  # (N, C), columns in the classifier's class order

    def top(self) -> tuple[str, float]:
        """Return the most probable class and its probability."""
        best = max(self.scores, key=self.scores.__getitem__)
        return best, self.scores[best]


@dataclass
class Classifier:
    """A model with everything needed to score frames: classes, temperature, sampling.

    `segments` and `frames_per_segment` are the K and n its clips are sampled
    at, in evaluation and when the daemon checks a stream: the model card's.
    """

    model: nn.Module
    classes: list[str]
    model_id: str = "unsaved"
    arch: str = "squeezenet1_1"
    temperature: float = 1.0
    segments: int = DEFAULT_SEGMENTS
    frames_per_segment: int = DEFAULT_FRAMES_PER_SEGMENT
    card: dict = field(default_factory=dict)
    input_size: int = INPUT_SIZE  # the side of the square inputs it was trained on (its card's)
    # What scores frames: `model` itself ("fp32") or an int8 copy of it ("int8", monitor.quantize).
    serving: str = "fp32"
    serving_model: nn.Module | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.model.eval()
        if self.serving_model is None:
            self.serving, self.serving_model = "fp32", self.model
        self.serving_model.eval()

    def serve_int8(self, int8_model: nn.Module) -> None:
        """Score frames with an int8 copy of the model from now on (the fp32 model stays in `model`)."""
        self.serving, self.serving_model = "int8", int8_model.eval()

    def logits(self, frames: Sequence[np.ndarray]) -> torch.Tensor:
        """Return the raw (N, C) logits of the frames (no temperature)."""
        model = self.serving_model if self.serving_model is not None else self.model
        model.eval()
        outs = []
        with torch.inference_mode():
            for start in range(0, len(frames), SCORE_BATCH):
                batch = preprocess(frames[start : start + SCORE_BATCH], self.input_size)
                # FX int8 kernels take contiguous NCHW; fp32 convolutions are faster channels-last.
                outs.append(model(batch.contiguous() if self.serving == "int8" else batch))
        if not outs:
            return torch.empty((0, len(self.classes)))
        return torch.cat(outs)

    def score(self, frames: Sequence[np.ndarray]) -> ClipScores:
        """Score a clip's frames: per-frame softmax(logits / T), averaged (segmental consensus)."""
        if not frames:
            raise ValueError("cannot score a clip with no frames")
        probs = torch.softmax(self.logits(frames) / self.temperature, dim=1).numpy()
        mean = probs.mean(axis=0)
        return ClipScores(scores={c: float(p) for c, p in zip(self.classes, mean, strict=True)}, frame_probs=probs)

    @classmethod
    def from_model(
        cls,
        model: nn.Module,
        classes: Sequence[str],
        *,
        model_id: str = "unsaved",
        arch: str = "squeezenet1_1",
        temperature: float = 1.0,
        segments: int = DEFAULT_SEGMENTS,
        frames_per_segment: int = DEFAULT_FRAMES_PER_SEGMENT,
        card: dict | None = None,
        input_size: int = INPUT_SIZE,
    ) -> Classifier:
        """Wrap a model built or trained in this process."""
        return cls(
            model=model,
            classes=list(classes),
            model_id=model_id,
            arch=arch,
            temperature=float(temperature),
            segments=segments,
            frames_per_segment=frames_per_segment,
            card=dict(card or {}),
            input_size=int(input_size),
        )
