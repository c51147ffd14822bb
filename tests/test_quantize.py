"""int8 serving: the int8 copy scores like fp32, the guard judges it, the registry falls back to fp32."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from monitor.classify import Classifier, build_model
from monitor.model_registry import INT8_FILE, ModelRegistry
from monitor.quantize import Int8Guard, load_int8, quantize_int8
from trainer.registry import add_int8, save_model

CLASSES = ["21779", "509658", "33214", "27471"]


def scene_frames(count: int, seed: int = 0) -> list[np.ndarray]:
    """Frames with structure (colour fields, bars, noise), not pure noise: what a model's features react to."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        frame = np.empty((90, 160, 3), dtype=np.uint8)
        frame[:] = rng.integers(0, 255, 3, dtype=np.uint8)
        frame[:, (i * 13) % 120 : (i * 13) % 120 + 30] = rng.integers(0, 255, 3, dtype=np.uint8)
        frame[40:60] = np.clip(frame[40:60].astype(int) + rng.integers(-40, 40, (20, 160, 3)), 0, 255)
        out.append(frame)
    return out


@pytest.fixture(scope="module")
def model_and_int8():
    torch.manual_seed(3)
    model = build_model("squeezenet1_1", len(CLASSES), "none").eval()
    return model, quantize_int8(model, scene_frames(24, seed=1))


def test_int8_copy_scores_the_frames_as_fp32_does(model_and_int8):
    model, int8 = model_and_int8
    frames = scene_frames(32, seed=2)
    fp32 = Classifier.from_model(model, CLASSES)
    served = Classifier.from_model(model, CLASSES)
    served.serve_int8(int8)
    a, b = fp32.logits(frames).numpy(), served.logits(frames).numpy()
    assert served.serving == "int8" and fp32.serving == "fp32"
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.98
    assert np.mean(a.argmax(1) == b.argmax(1)) >= 0.8


def test_int8_state_reloads_to_the_same_outputs(model_and_int8):
    model, int8 = model_and_int8
    again = load_int8(model, int8.state_dict())
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        assert torch.equal(int8(x), again(x))


def test_guard_accepts_half_a_point_and_rejects_more():
    labels = ["a"] * 200
    fp32 = ["a"] * 180 + ["b"] * 20
    one_lost = ["a"] * 179 + ["b"] * 21  # -0.5 points
    two_lost = ["a"] * 178 + ["b"] * 22  # -1.0 point
    assert Int8Guard.judge(labels, fp32, one_lost, 0.9, 0.9).accepted
    rejected = Int8Guard.judge(labels, fp32, two_lost, 0.9, 0.89)
    assert not rejected.accepted and rejected.int8_clip_accuracy == pytest.approx(0.89)


def _guard(accepted: bool) -> dict:
    return Int8Guard(20, 0.9, 0.9 if accepted else 0.8, 0.9, 0.8, 0.8, accepted).to_json()


@pytest.mark.parametrize("accepted", [True, False])
def test_registry_serves_int8_only_when_the_card_accepts_it(tmp_path, model_and_int8, accepted):
    model, int8 = model_and_int8
    model_id = save_model(tmp_path, model, {"arch": "squeezenet1_1", "classes": CLASSES})
    add_int8(tmp_path, model_id, int8.state_dict(), _guard(accepted))
    registry = ModelRegistry(tmp_path)
    assert registry.load(model_id, "int8").serving == ("int8" if accepted else "fp32")
    assert registry.load(model_id, "fp32").serving == "fp32"
    assert registry.card(model_id)["int8"]["accepted"] is accepted


def test_registry_falls_back_to_fp32_without_a_usable_int8_file(tmp_path, model_and_int8):
    model, _ = model_and_int8
    registry = ModelRegistry(tmp_path)
    plain = save_model(tmp_path, model, {"arch": "squeezenet1_1", "classes": CLASSES})
    assert registry.load(plain, "int8").serving == "fp32"
    broken = save_model(tmp_path, model, {"arch": "squeezenet1_1", "classes": CLASSES, "int8": _guard(True)})
    (registry.model_dir(broken) / INT8_FILE).write_bytes(b"not a state dict")
    assert registry.load(broken, "int8").serving == "fp32"
