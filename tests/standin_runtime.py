"""A Runtime on the small stand-in whose active model gives fixed logits, for real checks in tests.

    rt = constant_model_runtime(small_standin, tmp_path, {"21779": 8.0})   # says League of Legends
    ...
    rt.close()
"""

from __future__ import annotations

from pathlib import Path

import torch

from monitor.config import load_config
from monitor.cycle import Runtime
from monitor.sim import small_scenario
from monitor.store import Store

CHATTING = "509658"


def constant_model_runtime(standin, tmp_path: Path, logits: dict[str, float]) -> Runtime:
    """Return a Runtime whose active model, a real SqueezeNet, gives these logits whatever it sees."""
    from monitor.classify import build_model
    from monitor.model_registry import ModelRegistry
    from trainer.registry import save_model

    torch.set_num_threads(1)
    classes = [c.id for c in small_scenario().categories]
    cfg = load_config(environ={}, overrides={
        "twitch": standin.twitch_config(),
        "categories": {"watch": classes, "chatting": CHATTING},
        "monitor": {"capture_seconds": 6, "segments": 3, "frames_per_segment": 2, "capture_timeout_seconds": 30.0},
        "storage": {"database_url": f"sqlite:///{tmp_path / 'tw.db'}", "data_dir": str(tmp_path / "data")},
        "model": {"pretrained": "none"},
    })
    Store(cfg.storage.database_url).upgrade()
    model = build_model("squeezenet1_1", len(classes), "none")
    head = model.classifier[1]  # the 1x1 conv: zero weights, so the logits are its bias
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([logits.get(c, 0.0) for c in classes]))
    model_id = save_model(cfg.data_path, model, {"classes": classes, "arch": "squeezenet1_1",
                                                 "segments": 3, "frames_per_segment": 2})
    ModelRegistry(cfg.data_path).activate(model_id)
    return Runtime(cfg)
