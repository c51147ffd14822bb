"""A human's label reaches training: `review ID --label CATEGORY`, then `retrain` learns from those frames so labelled."""

from __future__ import annotations

import json

from review_helpers import CHATTING, FORTNITE, LOL, ReviewWorld
from toydata import CLASSES, toy_config, write_toy_dataset

from monitor.model_registry import ModelRegistry
from trainer.dataset import load_dataset


def test_review_relabels_a_flags_frames_and_the_next_retrain_trains_on_them(cli, tmp_path):
    data_dir = tmp_path / "data"
    write_toy_dataset(data_dir)  # 3 classes x 5 channels, one per class in the frozen test set
    config = toy_config(tmp_path / "toy.toml", data_dir)
    world = ReviewWorld(tmp_path, f"sqlite:///{tmp_path / 'tw.db'}", watch=list(CLASSES))
    try:
        # A stream declaring League of Legends that the model took for Just Chatting; it shows Fortnite's scene.
        flag_id = world.flag("zed", declared=LOL, shows=CHATTING, kind=CLASSES.index(FORTNITE))
        before = load_dataset(data_dir, include_live=True)
        assert before.train_sources == {"clip": 12}  # queued for review: never in training by itself

        code, out, err = cli("review", str(flag_id), "--label", FORTNITE, "--json", "--config", str(world.config_path))
        assert code == 0, err
        assert json.loads(out)["verdict"] == "confirmed"
    finally:
        world.close()

    grown = load_dataset(data_dir, include_live=True)
    reviewed = [c for c in grown.train if c.clip_id.startswith("reviewed-")]
    assert [(c.label, c.channel, len(c.frames)) for c in reviewed] == [(FORTNITE, reviewed[0].channel, 4)] * 2
    assert grown.train_sources == {"clip": 12, "reviewed": 2}
    assert grown.dataset_hash != before.dataset_hash  # a new training set, as the model card will record

    code, out, err = cli("retrain", "--json", "--epochs", "1", "--config", str(config))
    assert code == 0, err
    summary = json.loads(out[out.index("{"):])
    assert summary["train_sources"] == {"clip": 12, "reviewed": 2} and summary["train_clips"] == 14
    assert summary["promoted"] is True  # no active model before: the challenger is promoted
    # The challenger's card names the very training set loaded above, reviewed clips included.
    assert ModelRegistry(data_dir).card(summary["model_id"])["dataset_hash"] == grown.dataset_hash
