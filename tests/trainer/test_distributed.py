"""Training under torchrun: the shards, the gathering, and `torchrun --nproc_per_node=2 -m monitor train` for real."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from toydata import CLASSES, toy_config, write_toy_dataset

from monitor.errors import UsageError
from monitor.model_registry import ModelRegistry
from trainer.distributed import World, merge_outcomes, shard, single_process_only
from trainer.evaluate import Clip, ClipOutcome

REPO = Path(__file__).resolve().parents[2]


def clips(n: int, labels: str = "ab") -> list[Clip]:
    return [Clip(f"c{i:02d}", labels[i % len(labels)], f"ch{i}", [np.zeros((2, 2, 3), np.uint8)]) for i in range(n)]


@pytest.mark.parametrize(("n", "size"), [(9, 2), (10, 2), (7, 3), (2, 4), (5, 1)])
def test_shards_cover_every_clip_and_are_equally_long(n, size):
    shards = [shard(clips(n), World(rank, size)) for rank in range(size)]
    assert len({len(s) for s in shards}) == 1  # equal steps per epoch on every rank
    ids = [c.clip_id for s in shards for c in s]
    assert set(ids) == {c.clip_id for c in clips(n)}
    assert len(ids) - n == (-n) % size  # only the padding repeats a clip
    # Every rank gets both labels where there are enough clips (the order is by label first).
    if n >= 2 * size:
        assert all({c.label for c in s} == {"a", "b"} for s in shards)


def test_a_world_of_one_keeps_every_clip():
    assert [c.clip_id for c in shard(clips(3), World())] == ["c00", "c01", "c02"]


def outcome(clip_id: str, label: str = "a", predicted: str = "a") -> ClipOutcome:
    return ClipOutcome(clip_id, label, predicted, 0.9, 0.9, predicted, 0.8, 0.8, 1, 1)


def test_gathered_outcomes_count_a_padded_clip_once():
    merged = merge_outcomes([[outcome("c2"), outcome("c0")], [outcome("c1", predicted="b"), outcome("c0")]])
    assert [o.clip_id for o in merged] == ["c0", "c1", "c2"]
    assert [o.correct for o in merged] == [True, False, True]


def test_the_world_comes_from_torchruns_environment():
    assert World.from_env({}) == World(0, 1)
    assert World.from_env({"RANK": "1", "WORLD_SIZE": "2"}) == World(1, 2) and not World(1, 2).main
    for bad in ({"RANK": "2", "WORLD_SIZE": "2"}, {"RANK": "x", "WORLD_SIZE": "2"}, {"WORLD_SIZE": "0"}):
        with pytest.raises(UsageError):
            World.from_env(bad)


def test_commands_other_than_train_refuse_to_run_once_per_rank():
    single_process_only("retrain", World(0, 1))
    with pytest.raises(UsageError, match="under torchrun only `twitchwatch train` is distributed"):
        single_process_only("retrain", World(0, 2))


@pytest.mark.slow
def test_torchrun_with_two_processes_trains_on_shards_and_registers_one_model(tmp_path):
    data_dir = tmp_path / "data"
    write_toy_dataset(data_dir)  # 3 classes x 5 channels: 9 training clips, 3 validation, 3 test
    cfg = toy_config(tmp_path / "twitchwatch.toml", data_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWITCHWATCH_", "TWITCH_"))}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])))
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "monitor", "train", "--json", "--config", str(cfg)],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    summary = json.loads(result.stdout)  # one JSON object: rank 0's alone
    registry = ModelRegistry(data_dir)
    assert [card["model_id"] for card in registry.list()] == [summary["model_id"]]
    assert registry.active_id() == summary["model_id"] and summary["promoted"] is True
    card = registry.card(summary["model_id"])
    assert card["distributed"] == {"world_size": 2, "backend": "gloo", "train_clips_per_rank": 5,
                                   "validation_clips_per_rank": 2}
    assert card["counts"] == {"train": 9, "validation": 3, "test": 3}
    # Each rank read its shard only: 5 of the 9 training clips (one rank's fifth repeats a clip), 2 of the
    # 3 validation clips.
    shards = sorted(re.findall(r"rank (\d)/2: (\d+) of 9 training clips, (\d+) of 3 validation", result.stderr))
    assert shards == [("0", "5", "2"), ("1", "5", "2")], result.stderr[-3000:]
    # The gathered validation saw every validation clip once (3; the toy config lays out nothing, so no
    # relaid copies), not the clip both ranks hold twice.
    assert sum(map(sum, card["metrics"]["validation"]["val"]["confusion"])) == 3
    assert registry.load(summary["model_id"]).classes == sorted(CLASSES)
