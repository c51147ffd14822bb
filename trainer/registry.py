"""Write models into the registry that `monitor.model_registry.ModelRegistry` reads.

    model_id = save_model(cfg.data_path, result.model, result.card(dataset_hash=h),
                          confusion=metrics["confusion"])
    activate(cfg.data_path, model_id)      # refuses a model that does not load

Each file is written to a temp file in its final directory and moved into
place with os.replace, card.json last: a reader sees a complete model or
none, never a half-written weights file.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import torch
from torch import nn

from monitor import __version__
from monitor.atomic_file import write_atomic
from monitor.classify import ARCHS
from monitor.config import DEFAULT_FRAMES_PER_SEGMENT, DEFAULT_SEGMENTS
from monitor.errors import ModelError
from monitor.frames import PREPROCESSING
from monitor.model_registry import CARD_FILE, CONFUSION_FILE, INT8_FILE, WEIGHTS_FILE, ModelRegistry

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
# Copied from the card into the checkpoint: loading must not depend on card.json alone.
_CHECKPOINT_KEYS = ("arch", "classes", "temperature", "segments", "frames_per_segment")


def new_model_id(now: datetime | None = None) -> str:
    """Return a fresh model id such as 20261123T221500Z-3fa9c1 (sorts by creation time)."""
    now = now or datetime.now(UTC)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"


def save_model(
    data_dir: str | Path,
    model: nn.Module,
    card: dict,
    *,
    confusion: Sequence[Sequence[int]] | None = None,
    int8_state: dict[str, torch.Tensor] | None = None,
) -> str:
    """Store a trained model and its card; return its model id. Does not activate it.

    `card` must hold `arch` and `classes`; `temperature`, `segments`,
    `frames_per_segment`, metrics and dataset hash are recorded as given.
    `int8_state` (trainer.int8) is saved beside the weights; the card's
    `int8` entry says whether it may serve.
    """
    if card.get("arch") not in ARCHS or not card.get("classes"):
        raise ModelError("a model card needs arch (squeezenet1_0/1_1) and a non-empty classes list")
    registry = ModelRegistry(data_dir)
    registry.root.mkdir(parents=True, exist_ok=True)
    model_id = new_model_id()
    directory = registry.model_dir(model_id)
    directory.mkdir()
    full_card = _complete_card(card, model_id)
    checkpoint = {
        "format_version": FORMAT_VERSION,
        "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        **{k: full_card[k] for k in _CHECKPOINT_KEYS},
        "input_size": full_card["input_size"],
    }
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    write_atomic(directory / WEIGHTS_FILE, buffer.getvalue())
    if int8_state is not None:
        buffer = io.BytesIO()
        torch.save(int8_state, buffer)
        write_atomic(directory / INT8_FILE, buffer.getvalue())
    if confusion is not None:
        write_atomic(directory / CONFUSION_FILE, render_confusion(confusion, full_card["classes"]))
    write_atomic(directory / CARD_FILE, json.dumps(full_card, indent=2, sort_keys=True, default=_jsonable).encode())
    log.info("saved model %s to %s", model_id, directory)
    return model_id


def add_int8(data_dir: str | Path, model_id: str, int8_state: dict[str, torch.Tensor], guard: dict) -> None:
    """Attach an int8 copy (trainer.int8) to a registered model and record its guard in the card."""
    registry = ModelRegistry(data_dir)
    card = registry.card(model_id)
    buffer = io.BytesIO()
    torch.save(int8_state, buffer)
    write_atomic(registry.model_dir(model_id) / INT8_FILE, buffer.getvalue())
    card["int8"] = dict(guard)
    write_atomic(registry.model_dir(model_id) / CARD_FILE,
                 json.dumps(card, indent=2, sort_keys=True, default=_jsonable).encode())


def activate(data_dir: str | Path, model_id: str) -> None:
    """Make model_id the active model (loads it first; a bad model raises ModelError)."""
    ModelRegistry(data_dir).activate(model_id)


def render_confusion(matrix: Sequence[Sequence[int]], classes: Sequence[str]) -> bytes:
    """Draw a confusion matrix (rows: true class, columns: predicted) as PNG bytes."""
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

    size = max(3.0, 0.6 * len(classes) + 1.5)
    fig = Figure(figsize=(size, size))
    ax = fig.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(classes)), labels=list(classes), rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), labels=list(classes))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            ax.text(j, i, str(value), ha="center", va="center")
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def _jsonable(value: object) -> object:
    """Turn numpy and torch scalars/arrays (common in metrics) into JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"model card value of type {type(value).__name__} is not JSON serialisable")


def _complete_card(card: dict, model_id: str) -> dict:
    full = {
        "temperature": 1.0,
        "segments": DEFAULT_SEGMENTS,
        "frames_per_segment": DEFAULT_FRAMES_PER_SEGMENT,
        "preprocessing": PREPROCESSING,
        "input_size": PREPROCESSING["input_size"],
        "code_version": __version__,
        **card,
    }
    full["classes"] = [str(c) for c in card["classes"]]
    full["temperature"] = float(full["temperature"])
    full["model_id"] = model_id
    full["created_at"] = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    full["format_version"] = FORMAT_VERSION
    return full
