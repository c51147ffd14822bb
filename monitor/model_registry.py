"""Read the model registry: which model is active, load it, list the model cards.

    registry = ModelRegistry(cfg.data_path)
    clf = registry.load_active()          # Classifier, or ModelError saying what to run
    registry.activate("20261123T221500Z-3fa9c1")

Layout under `<data_dir>/models/`:

    ACTIVE                      the active model id (one line), replaced atomically
    <model_id>/weights.pt       plain dict checkpoint: model (state dict), arch, classes, ...
    <model_id>/weights-int8.pt  optional: the int8 copy's state dict (monitor.quantize); the
                                card's `int8` entry says if it kept clip accuracy
    <model_id>/card.json        what the model is and how well it did (written last)
    <model_id>/confusion.png    optional: the test confusion matrix

The daemon reads this side only; `trainer.registry` writes models. A model
directory without card.json is still being written and is not listed.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import torch

from monitor.atomic_file import write_atomic
from monitor.classify import ARCHS, Classifier, build_model
from monitor.config import DEFAULT_FRAMES_PER_SEGMENT, DEFAULT_SEGMENTS
from monitor.errors import ModelError
from monitor.frames import INPUT_SIZE
from monitor.quantize import load_int8

log = logging.getLogger(__name__)

ACTIVE_FILE = "ACTIVE"
WEIGHTS_FILE = "weights.pt"
INT8_FILE = "weights-int8.pt"
CARD_FILE = "card.json"
CONFUSION_FILE = "confusion.png"
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ModelRegistry:
    """The models under `<data_dir>/models/` and the pointer to the active one."""

    def __init__(self, data_dir: str | Path):
        self.root = Path(data_dir) / "models"

    def model_dir(self, model_id: str) -> Path:
        """Return the directory of a model id (validated: no path tricks)."""
        if not _MODEL_ID.match(model_id):
            raise ModelError(f"invalid model id {model_id!r}")
        return self.root / model_id

    def active_id(self) -> str | None:
        """Return the active model id, or None when none was activated."""
        try:
            text = (self.root / ACTIVE_FILE).read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            return None
        return text or None

    def load(self, model_id: str, inference: str = "fp32") -> Classifier:
        """Load a model into a Classifier; a missing, truncated or mismatched file raises ModelError.

        With `inference="int8"` the int8 copy serves when the model has one
        that its card accepts (it kept clip accuracy on the test clips);
        otherwise fp32 serves and the log says why.
        """
        directory = self.model_dir(model_id)
        if not directory.is_dir():
            raise ModelError(f"model {model_id} not found in {self.root}")
        card = self.card(model_id)
        weights = directory / WEIGHTS_FILE
        checkpoint = _read_checkpoint(weights)
        arch = checkpoint.get("arch", card.get("arch"))
        classes = [str(c) for c in checkpoint.get("classes", card.get("classes", []))]
        if arch not in ARCHS or not classes:
            raise ModelError(f"{weights} does not say which architecture and classes it holds")
        model = build_model(arch, len(classes), pretrained="none")
        try:
            model.load_state_dict(checkpoint["model"])
        except (RuntimeError, KeyError, TypeError) as exc:
            raise ModelError(f"{weights} does not fit {arch} with {len(classes)} classes: {_brief(exc)}") from None
        classifier = Classifier.from_model(
            model,
            classes,
            model_id=model_id,
            arch=arch,
            temperature=float(checkpoint.get("temperature", card.get("temperature", 1.0))),
            segments=int(checkpoint.get("segments", card.get("segments", DEFAULT_SEGMENTS))),
            frames_per_segment=int(checkpoint.get("frames_per_segment",
                                                  card.get("frames_per_segment", DEFAULT_FRAMES_PER_SEGMENT))),
            card=card,
            input_size=int(card.get("input_size", INPUT_SIZE)),
        )
        if inference == "int8":
            self._serve_int8(classifier, directory / INT8_FILE)
        return classifier

    def _serve_int8(self, classifier: Classifier, path: Path) -> None:
        guard = classifier.card.get("int8") or {}
        if not path.exists() or not guard:
            log.info("model %s has no int8 copy: fp32 serves", classifier.model_id)
            return
        if not guard.get("accepted"):
            log.warning("model %s: int8 lost clip accuracy (%s against fp32 %s on %s test clips): fp32 serves",
                        classifier.model_id, guard.get("int8_clip_accuracy"), guard.get("fp32_clip_accuracy"),
                        guard.get("clips"))
            return
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            classifier.serve_int8(load_int8(classifier.model, state, classifier.input_size))
        except Exception as exc:  # a bad int8 file must not stop the fp32 model serving
            log.warning("model %s: int8 weights %s unusable (%s): fp32 serves", classifier.model_id, path,
                        _brief(exc))

    def load_active(self, inference: str = "fp32") -> Classifier:
        """Load the active model, or raise ModelError saying how to get one."""
        model_id = self.active_id()
        if model_id is None:
            raise ModelError(
                f"no active model in {self.root}: run `twitchwatch train` or `twitchwatch demo` first"
            )
        return self.load(model_id, inference)

    def card(self, model_id: str) -> dict:
        """Return a model's card.json as a dict."""
        path = self.model_dir(model_id) / CARD_FILE
        try:
            card = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ModelError(f"model {model_id} has no {CARD_FILE} (incomplete write?): {path}") from None
        except (OSError, ValueError) as exc:
            raise ModelError(f"{path} is unreadable: {exc}") from None
        if not isinstance(card, dict):
            raise ModelError(f"{path} is not a JSON object")
        card.setdefault("model_id", model_id)
        return card

    def list(self) -> list[dict]:
        """Return every complete model's card with an `active` flag, newest first."""
        if not self.root.is_dir():
            return []
        active = self.active_id()
        cards = []
        for directory in self.root.iterdir():
            if not directory.is_dir() or not (directory / CARD_FILE).exists() or not _MODEL_ID.match(directory.name):
                continue
            try:
                card = self.card(directory.name)
            except ModelError as exc:
                card = {"model_id": directory.name, "error": str(exc)}
            card["active"] = directory.name == active
            cards.append(card)
        cards.sort(key=lambda c: (str(c.get("created_at", "")), c["model_id"]), reverse=True)
        return cards

    def activate(self, model_id: str) -> None:
        """Make a model the active one, after loading it; a bad model leaves the pointer as it was."""
        self.load(model_id)
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomic(self.root / ACTIVE_FILE, (model_id + "\n").encode())
        log.info("model %s is now active", model_id)


def _read_checkpoint(path: Path) -> dict:
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ModelError(f"model weights {path} are missing") from None
    except Exception as exc:  # truncated zip, bad pickle, foreign objects: one answer
        raise ModelError(f"model weights {path} are unreadable ({type(exc).__name__}: {_brief(exc)})") from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise ModelError(f"model weights {path} are not a twitchwatch checkpoint (no 'model' state dict)")
    return checkpoint


def _brief(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200]
