"""The model registry: save (trainer side), load/list/activate (monitor side), and bad model files."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from monitor.classify import Classifier, build_model
from monitor.errors import ModelError
from monitor.model_registry import ModelRegistry
from trainer.registry import activate, save_model

CLASSES = ["21779", "509658", "33214"]


def card(**extra) -> dict:
    return {
        "arch": "squeezenet1_1",
        "classes": CLASSES,
        "segments": 2,
        "frames_per_segment": 1,
        "temperature": 1.7,
        "dataset_hash": "sha256:abc",
        "metrics": {"test_accuracy": np.float64(0.5)},  # numpy scalars appear in metrics
        **extra,
    }


def frames() -> list[np.ndarray]:
    rng = np.random.default_rng(5)
    return [rng.integers(0, 255, (36, 64, 3), dtype=np.uint8) for _ in range(3)]


def saved(data_dir: Path, seed: int = 0, **extra) -> tuple[str, torch.nn.Module]:
    torch.manual_seed(seed)
    model = build_model("squeezenet1_1", len(CLASSES))
    return save_model(data_dir, model, card(**extra)), model


def test_saved_model_reloads_with_the_same_scores(tmp_path):
    model_id, model = saved(tmp_path)
    original = Classifier.from_model(model, CLASSES, temperature=1.7).score(frames())
    loaded = ModelRegistry(tmp_path).load(model_id)
    again = loaded.score(frames())
    assert np.allclose(original.frame_probs, again.frame_probs, atol=1e-6)
    assert (loaded.model_id, loaded.classes, loaded.arch) == (model_id, CLASSES, "squeezenet1_1")
    assert (loaded.temperature, loaded.segments, loaded.frames_per_segment) == (1.7, 2, 1)
    assert loaded.card["dataset_hash"] == "sha256:abc"


def test_save_writes_a_complete_card_and_no_temp_files(tmp_path):
    model_id, _ = saved(tmp_path, confusion=None)
    directory = tmp_path / "models" / model_id
    assert sorted(p.name for p in directory.iterdir()) == ["card.json", "weights.pt"]
    written = json.loads((directory / "card.json").read_text())
    for key in ("classes", "arch", "segments", "frames_per_segment", "preprocessing", "input_size",
                "dataset_hash", "metrics", "temperature", "code_version", "created_at", "model_id"):
        assert key in written, key
    assert written["metrics"]["test_accuracy"] == 0.5
    assert written["input_size"] == 224
    checkpoint = torch.load(directory / "weights.pt", weights_only=True)
    assert checkpoint["classes"] == CLASSES and checkpoint["arch"] == "squeezenet1_1"
    assert "classifier.1.weight" in checkpoint["model"]


def test_save_can_draw_the_confusion_matrix(tmp_path):
    model_id = save_model(tmp_path, build_model("squeezenet1_1", 3), card(), confusion=[[3, 0, 1], [0, 4, 0], [1, 0, 2]])
    png = (tmp_path / "models" / model_id / "confusion.png").read_bytes()
    assert png.startswith(b"\x89PNG")


def test_save_does_not_activate_and_activate_does(tmp_path):
    registry = ModelRegistry(tmp_path)
    model_id, _ = saved(tmp_path)
    assert registry.active_id() is None
    activate(tmp_path, model_id)
    assert registry.active_id() == model_id
    assert registry.load_active().model_id == model_id


def test_no_active_model_says_what_to_run(tmp_path):
    with pytest.raises(ModelError, match="twitchwatch train"):
        ModelRegistry(tmp_path).load_active()


def test_truncated_weights_are_refused_and_the_active_model_stays(tmp_path):
    registry = ModelRegistry(tmp_path)
    good, _ = saved(tmp_path, seed=1)
    registry.activate(good)
    bad, _ = saved(tmp_path, seed=2)
    weights = tmp_path / "models" / bad / "weights.pt"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelError, match=str(weights)):
        registry.activate(bad)
    assert registry.active_id() == good
    assert registry.load_active().model_id == good


def test_weights_that_do_not_fit_their_classes_are_refused(tmp_path):
    registry = ModelRegistry(tmp_path)
    model_id, _ = saved(tmp_path)
    weights = tmp_path / "models" / model_id / "weights.pt"
    checkpoint = torch.load(weights, weights_only=True)
    checkpoint["classes"] = CLASSES + ["27471"]  # the head has 3 outputs, the card claims 4
    torch.save(checkpoint, weights)
    with pytest.raises(ModelError, match="weights.pt"):
        registry.load(model_id)
    with pytest.raises(ModelError):
        registry.activate(model_id)
    assert registry.active_id() is None


def test_missing_weights_and_unknown_models_are_model_errors(tmp_path):
    registry = ModelRegistry(tmp_path)
    model_id, _ = saved(tmp_path)
    (tmp_path / "models" / model_id / "weights.pt").unlink()
    with pytest.raises(ModelError, match="missing"):
        registry.load(model_id)
    with pytest.raises(ModelError, match="not found"):
        registry.load("20200101T000000Z-abcdef")
    with pytest.raises(ModelError, match="invalid model id"):
        registry.load("../../etc")


def test_list_shows_cards_newest_first_with_the_active_flag(tmp_path):
    registry = ModelRegistry(tmp_path)
    assert registry.list() == []
    first, _ = saved(tmp_path)
    second, _ = saved(tmp_path)
    (tmp_path / "models" / "half-written").mkdir()  # no card yet: not listed
    registry.activate(first)
    cards = registry.list()
    assert [c["model_id"] for c in cards] == [second, first]
    assert [c["active"] for c in cards] == [False, True]
    assert cards[0]["classes"] == CLASSES


def test_model_ids_sort_by_creation_time(tmp_path):
    model_id, _ = saved(tmp_path)
    stamp, _, suffix = model_id.partition("-")
    assert len(stamp) == 16 and stamp.endswith("Z") and stamp[8] == "T"
    assert len(suffix) == 6 and int(suffix, 16) >= 0


def test_save_refuses_a_card_without_arch_or_classes(tmp_path):
    with pytest.raises(ModelError):
        save_model(tmp_path, build_model("squeezenet1_1", 3), {"classes": CLASSES})
    with pytest.raises(ModelError):
        save_model(tmp_path, build_model("squeezenet1_1", 3), {"arch": "squeezenet1_1", "classes": []})


def test_monitor_never_imports_trainer():
    # Static, so that imports inside functions (run only on some paths) are caught too.
    root = Path(__file__).resolve().parents[1] / "monitor"
    offenders = []
    for path in root.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            offenders += [f"{path.name}: {n}" for n in names if n == "trainer" or n.startswith("trainer.")]
    assert offenders == []
