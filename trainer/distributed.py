"""Train under torchrun: DistributedDataParallel with gloo on the CPU, each rank on its shard of the dataset.

    torchrun --nproc_per_node=2 -m monitor train --json     # `twitchwatch train`, unchanged
    world = World.from_env()        # rank and size from torchrun's RANK and WORLD_SIZE; 0 of 1 run plainly

Sharding. Every rank reads the dataset's metadata (clips, channels,
labels), so the validation split (trainer.pipeline.split_validation, by
channel) is the same everywhere; then each rank loads the frames of its
shard only: every size-th clip in (label, clip id) order, from a list padded
by repeating its first clips so that all shards are as long (equal steps per
epoch, which DDP's collective backward needs). Rank 0 also loads the frozen
test clips: it alone evaluates the model on them and writes the registry;
the other ranks end once training ends.

Inside trainer/train.py, each hook is a no-op in a single process:

    net = wrap(model)                       # DDP: gradients averaged over the ranks at every step
    any_rank(flag)                          # a decision every rank takes when one rank sees it
    mean_over_ranks(stats)                  # an epoch's training loss and accuracy, over all shards
    gathered(evaluation)                    # the ranks' clip outcomes as one Evaluation, repeats dropped
    gathered_logits(logits, labels, clips)  # the same for calibration

so every rank sees the same validation metrics and takes the same
early-stopping, restart and time-budget decisions.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from monitor.config import Config
from monitor.errors import UsageError
from trainer.evaluate import Clip, ClipOutcome, Evaluation

if TYPE_CHECKING:
    from trainer.train import TrainingSpec

BACKEND = "gloo"  # CPU training
# A rank that waits this long for the others has lost them (one crashed; torchrun ends the rest).
COLLECTIVE_TIMEOUT = timedelta(minutes=30)
T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> World:
        """Read torchrun's RANK and WORLD_SIZE; without them, a world of one."""
        environ = os.environ if environ is None else environ
        try:
            size = int(environ.get("WORLD_SIZE", "1"))
            rank = int(environ.get("RANK", "0"))
        except ValueError:
            raise UsageError("WORLD_SIZE and RANK must be integers (as torchrun sets them)") from None
        if size < 1 or not 0 <= rank < size:
            raise UsageError(f"RANK {rank} of WORLD_SIZE {size} is not a place in a world: start it with torchrun")
        return cls(rank=rank, size=size)

    @property
    def main(self) -> bool:
        """Return whether this rank evaluates, writes the registry and prints."""
        return self.rank == 0


def single_process_only(command: str, world: World | None = None) -> None:
    """Refuse to run `command` once per rank under torchrun: only `train` is distributed."""
    world = world or World.from_env()
    if world.size > 1:
        raise UsageError(f"twitchwatch {command} runs in one process; under torchrun only `twitchwatch train` "
                         f"is distributed (WORLD_SIZE is {world.size})")


@contextmanager
def process_group(world: World) -> Iterator[None]:
    """Join the world's gloo process group for the block (nothing for a world of one)."""
    if world.size == 1:
        yield
        return
    dist.init_process_group(BACKEND, rank=world.rank, world_size=world.size, timeout=COLLECTIVE_TIMEOUT)
    try:
        yield
    finally:
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def shard(clips: Sequence[Clip], world: World) -> list[Clip]:
    """Return this rank's clips: every size-th in (label, clip id) order, all shards equally long.

    The ordered list is padded by repeating its first clips up to a multiple
    of the world size, so a shard may hold one repeat; gathering drops it.
    """
    if world.size == 1:
        return list(clips)
    ordered = sorted(clips, key=lambda c: (c.label, c.clip_id))
    if not ordered:
        return []
    padded = ordered + ordered[: (-len(ordered)) % world.size]
    return padded[world.rank::world.size]


def wrap(model: nn.Module) -> nn.Module:
    """Return the model to train: in DDP when several ranks train it (parameters shared with `model`)."""
    if not _active():
        return model
    return nn.parallel.DistributedDataParallel(model)


def any_rank(flag: bool) -> bool:
    """Return True on every rank when it is True on any."""
    if not _active():
        return bool(flag)
    value = torch.tensor([1 if flag else 0], dtype=torch.int32)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def mean_over_ranks(stats: dict[str, float]) -> dict[str, float]:
    """Return the ranks' mean of each statistic (shards are equally long: a plain mean)."""
    if not _active():
        return stats
    keys = sorted(stats)
    values = torch.tensor([float(stats[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(values, op=dist.ReduceOp.SUM)
    values /= dist.get_world_size()
    return {k: float(v) for k, v in zip(keys, values.tolist(), strict=True)}


def merge_outcomes(parts: Sequence[Sequence[ClipOutcome]]) -> list[ClipOutcome]:
    """Join the ranks' outcomes, each clip once (a shard's padding repeats a clip), in clip id order."""
    seen: dict[str, ClipOutcome] = {}
    for part in parts:
        for outcome in part:
            seen.setdefault(outcome.clip_id, outcome)
    return [seen[clip_id] for clip_id in sorted(seen)]


def gathered(evaluation: Evaluation) -> Evaluation:
    """Return the Evaluation of every rank's clips, the same on every rank."""
    if not _active():
        return evaluation
    parts = _all_gather(evaluation.outcomes)
    return Evaluation(classes=evaluation.classes, temperature=evaluation.temperature,
                      outcomes=merge_outcomes(parts))


def gathered_logits(logits: torch.Tensor, labels: Sequence[int],
                    clips: Sequence[Clip]) -> tuple[torch.Tensor, list[int]]:
    """Return every rank's (clips, frames, classes) logits and labels, each clip once, in clip id order."""
    if not _active():
        return logits, list(labels)
    rows: dict[str, tuple[torch.Tensor, int]] = {}
    for part in _all_gather([(c.clip_id, logits[i], labels[i]) for i, c in enumerate(clips)]):
        for clip_id, row, label in part:
            rows.setdefault(clip_id, (row, label))
    ids = sorted(rows)
    return torch.stack([rows[i][0] for i in ids]), [rows[i][1] for i in ids]


def _all_gather(value: T) -> list[T]:
    parts: list = [None] * dist.get_world_size()
    dist.all_gather_object(parts, value)
    return parts


def train_and_register(cfg: Config, spec: TrainingSpec, world: World, *, activate: bool = True,
                       say: Callable[[str], None] = print) -> dict | None:
    """Train on this rank's shard in the world's process group; rank 0 evaluates, registers, returns the summary.

    The other ranks return None once training ends.
    """
    from monitor.model_registry import ModelRegistry
    from trainer.dataset import Dataset, load_dataset
    from trainer.pipeline import VAL_FRACTION, register_trained, split_validation
    from trainer.train import train_classifier

    meta = load_dataset(cfg.data_path, frames_for=())
    train_all, val_all = split_validation(meta.train, VAL_FRACTION, spec.seed)
    mine_train, mine_val = shard(train_all, world), shard(val_all, world)
    test = meta.test if world.main else []
    loaded = load_dataset(cfg.data_path, frames_for={c.clip_id for c in [*mine_train, *mine_val, *test]})
    by_id = {c.clip_id: c for c in [*loaded.train, *loaded.test]}
    train, val = [by_id[c.clip_id] for c in mine_train], [by_id[c.clip_id] for c in mine_val]
    print(f"rank {world.rank}/{world.size}: {len({c.clip_id for c in train})} of {len(train_all)} training clips, "
          f"{len({c.clip_id for c in val})} of {len(val_all)} validation clips", flush=True, file=sys.stderr)
    if world.main:
        say(f"training {spec.arch} on {len(train_all)} clips ({len(val_all)} validation, {len(meta.test)} test) "
            f"in {world.size} processes, {len(train)} a rank, classes {', '.join(meta.classes)}, "
            f"K={spec.segments} n={spec.frames_per_segment}")
    with process_group(world):
        result = train_classifier(train, val, meta.classes, spec, log=say if world.main else _quiet)
    if not world.main:
        return None
    data = Dataset(train=[], test=[by_id[c.clip_id] for c in meta.test], classes=meta.classes,
                   test_hash=meta.test_hash, dataset_hash=meta.dataset_hash)
    trained = register_trained(
        cfg.data_path, data, spec, result, say=say,
        counts={"train": len(train_all), "validation": len(val_all), "test": len(meta.test)},
        distributed={"world_size": world.size, "backend": BACKEND,
                     "train_clips_per_rank": len(train), "validation_clips_per_rank": len(val)})
    if activate:
        ModelRegistry(cfg.data_path).activate(trained.model_id)
        say(f"model {trained.model_id} is now the active model")
    return trained.summary(promoted=activate)


def _quiet(line: str) -> None:
    pass
