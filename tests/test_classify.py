"""SqueezeNet building (fresh, ImageNet through torchvision's cache, weights files) and clip scoring."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision import models as tvm

from monitor import classify
from monitor.classify import ARCHS, Classifier, build_model
from monitor.errors import ModelError

IMAGENET_FILES = {"squeezenet1_0": "squeezenet1_0-b66bff10.pth", "squeezenet1_1": "squeezenet1_1-b8a52dc0.pth"}


@pytest.fixture
def no_download(monkeypatch):
    """Make any download attempt fail as it does on a machine without network."""
    calls = []

    def refuse(url, dst, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("network is unreachable")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return calls


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    return checkpoints


def imagenet_like(arch: str) -> dict[str, torch.Tensor]:
    torch.manual_seed(123)
    return getattr(tvm, arch)(weights=None, num_classes=1000).state_dict()


@pytest.mark.parametrize("arch", ARCHS)
def test_build_model_outputs_one_logit_per_class(arch):
    model = build_model(arch, 5).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, 5)
    assert model.classifier[1].in_channels == 512 and model.classifier[1].out_channels == 5


def test_head_keeps_gradients_when_every_logit_is_negative():
    # The stall: with torchvision's ReLU after the last conv, negative head outputs become 0,
    # the loss sits at ln(C) and nothing learns. Here the logits stay negative and gradients flow.
    model = build_model("squeezenet1_1", 3).train()
    with torch.no_grad():
        model.classifier[1].bias.fill_(-50.0)
    logits = model(torch.randn(2, 3, 224, 224))
    assert (logits < 0).all()
    F.cross_entropy(logits, torch.tensor([0, 2])).backward()
    assert model.classifier[1].weight.grad.abs().sum() > 0
    assert model.features[0].weight.grad.abs().sum() > 0


def test_unknown_arch_is_refused():
    with pytest.raises(ModelError, match="squeezenet1_1"):
        build_model("resnet50", 3)


@pytest.mark.parametrize("arch", ARCHS)
def test_imagenet_weights_load_from_torch_home_without_network(arch, torch_home, no_download):
    state = imagenet_like(arch)
    torch.save(state, torch_home / IMAGENET_FILES[arch])
    model = build_model(arch, 4, pretrained="imagenet")
    assert no_download == []
    assert torch.equal(model.features[0].weight, state["features.0.weight"])
    assert torch.equal(model.features[12].expand3x3.weight, state["features.12.expand3x3.weight"])
    assert model.classifier[1].weight.shape == (4, 512, 1, 1)


def test_missing_imagenet_weights_say_where_to_put_them(torch_home, no_download):
    with pytest.raises(ModelError) as info:
        build_model("squeezenet1_1", 4, pretrained="imagenet")
    message = str(info.value)
    assert str(torch_home / IMAGENET_FILES["squeezenet1_1"]) in message
    assert '"none"' in message
    assert no_download  # it did try torchvision's download path


def test_corrupt_imagenet_cache_file_is_a_model_error(torch_home, no_download):
    (torch_home / IMAGENET_FILES["squeezenet1_0"]).write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelError, match="squeezenet1_0"):
        build_model("squeezenet1_0", 4, pretrained="imagenet")


def test_weights_file_with_imagenet_head_gets_a_new_head(tmp_path):
    state = imagenet_like("squeezenet1_1")
    path = tmp_path / "backbone.pth"
    torch.save(state, path)
    model = build_model("squeezenet1_1", 3, pretrained=str(path))
    assert torch.equal(model.features[3].squeeze.weight, state["features.3.squeeze.weight"])
    assert model.classifier[1].out_channels == 3


def test_weights_file_of_same_shape_loads_whole(tmp_path):
    source = build_model("squeezenet1_0", 3)
    path = tmp_path / "mine.pt"
    torch.save({"model": source.state_dict(), "arch": "squeezenet1_0"}, path)
    model = build_model("squeezenet1_0", 3, pretrained=str(path))
    assert torch.equal(model.classifier[1].weight, source.classifier[1].weight)


@pytest.mark.parametrize(
    "make",
    [
        lambda p: torch.save(build_model("squeezenet1_1", 5).state_dict(), p),  # other class count
        lambda p: torch.save(imagenet_like("squeezenet1_0"), p),  # other architecture
        lambda p: p.write_bytes(b"garbage"),
        lambda p: torch.save({"weights": [1, 2, 3]}, p),
        lambda p: None,  # missing
    ],
    ids=["classes", "arch", "garbage", "not-a-state-dict", "missing"],
)
def test_mismatched_or_broken_weights_file_is_a_model_error(tmp_path, make):
    path = tmp_path / "w.pth"
    make(path)
    with pytest.raises(ModelError, match=str(Path(path).name)):
        build_model("squeezenet1_1", 3, pretrained=str(path))


def colour_frames(rgb: tuple[int, int, int], count: int = 4) -> list[np.ndarray]:
    return [np.full((48, 64, 3), rgb, np.uint8) for _ in range(count)]


def test_score_averages_frame_softmax_and_is_deterministic():
    torch.manual_seed(0)
    clf = Classifier.from_model(build_model("squeezenet1_1", 3), ["a", "b", "c"])
    clf.model.train()  # scoring must switch dropout off by itself
    frames = colour_frames((200, 30, 30), 2) + colour_frames((30, 30, 200), 3)
    first = clf.score(frames)
    second = clf.score(frames)
    assert first.frame_probs.shape == (5, 3)
    assert np.allclose(first.frame_probs.sum(axis=1), 1, atol=1e-5)
    assert list(first.scores) == ["a", "b", "c"]
    assert np.allclose([first.scores[c] for c in "abc"], first.frame_probs.mean(axis=0))
    assert np.array_equal(first.frame_probs, second.frame_probs)


def test_temperature_flattens_or_sharpens_scores():
    torch.manual_seed(1)
    model = build_model("squeezenet1_1", 3)
    with torch.no_grad():
        model.classifier[1].bias.copy_(torch.tensor([2.0, 0.0, -1.0]))
    frames = colour_frames((90, 90, 90), 2)
    top = {t: Classifier.from_model(model, ["a", "b", "c"], temperature=t).score(frames).top() for t in (0.5, 1, 4)}
    assert top[0.5][0] == top[1][0] == top[4][0] == "a"
    assert top[0.5][1] > top[1][1] > top[4][1] > 1 / 3


def test_score_batches_many_frames_like_few(monkeypatch):
    monkeypatch.setattr(classify, "SCORE_BATCH", 4)
    torch.manual_seed(2)
    clf = Classifier.from_model(build_model("squeezenet1_1", 2), ["x", "y"])
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (40, 60, 3), dtype=np.uint8) for _ in range(10)]  # 3 forward batches
    whole = clf.score(frames).frame_probs
    parts = np.concatenate([clf.score(frames[:5]).frame_probs, clf.score(frames[5:]).frame_probs])
    assert np.allclose(whole, parts, atol=1e-5)


def test_score_refuses_an_empty_clip():
    clf = Classifier.from_model(build_model("squeezenet1_1", 2), ["x", "y"])
    with pytest.raises(ValueError):
        clf.score([])
