"""Train a SqueezeNet on clips the TSN way, evaluate it, calibrate its confidence.

    spec = TrainingSpec.from_config(cfg, epochs=8)          # or TrainingSpec(arch=..., segments=..., ...)
    result = train_classifier(train_clips, val_clips, classes, spec, log=logger.info)
    result.metrics["val_accuracy"], result.temperature
    model_id = save_model(data_dir, result.model, result.card(dataset_hash=h))

Each epoch every training clip contributes K*m frames drawn with
`monitor.frames.sample_indices(..., "train", rng)` (a random frame of every
sub-block; m = `train_frames_per_segment`, 1 by default: TSN trains on one
snippet per segment, while inference averages K*n), augmented
(`trainer.augment`), then prepared by the same `monitor.frames.preprocess`
that inference uses.

The loss is TSN's segmental consensus: the clip's K*m frame logits are
averaged and one cross-entropy is taken per clip. A per-frame loss would
force every frame of a gameplay clip towards the game, including the frames
that only show the streamer's camera (the report's main failure); the
consensus lets such frames stay uncertain as long as the clip as a whole is
right, and it is what the clip-level prediction (and accuracy) is about.

m = 1 because an epoch then costs a third of one at m = n = 3, so more
epochs fit in the same time. `batch_size` counts frames: each step takes
round(batch_size / (K*m)) clips (at least one), so memory per step stays
bounded whatever K*m is; several clips a step, because a step with one clip
only pulls its own class up.

The forward pass runs in bfloat16 where the CPU has native bf16
instructions (`train.precision = "auto"`; bench/train_step.py measures the
step about 2x faster, with fp32 weights, gradients and loss); validation,
calibration and serving stay fp32.

AdamW, a 10-step linear warm-up, then cosine decay to zero. SqueezeNet from
random init (no batch norm) is touchy about the rate: too high a rate kills
every ReLU feeding the head (the loss then sits at ln C for good). Such a
collapse is detected (`_StallWatch`) and the run restarts with a third of the
rate. The measurements behind these settings are in docs/training-notes.md.

Validation runs every epoch on test-mode samples, exactly as inference
samples; training stops after `patience` epochs in which neither the
validation clip accuracy nor the validation loss improved while the training
clips were fit (`EarlyStopping`), and the epoch with the best accuracy (ties
broken by lower validation loss) gives the weights kept. Then one
temperature is fitted on the validation clips (LBFGS on the clip-level NLL
of the averaged probabilities, the quantity `Classifier.score` reports).
Without validation clips the best epoch is chosen on training accuracy and
loss, and T = 1. Validation and calibration use `trainer.evaluate`'s
functions, the ones the test set is scored with. Torch's thread count is
left to the caller.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import random
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from monitor.classify import Classifier, build_model
from monitor.config import Config
from monitor.errors import DatasetError, ModelError
from monitor.frames import INPUT_SIZE, preprocess, preprocessing, sample_indices
from monitor.verdict import GAMEPLAY
from trainer import distributed
from trainer.augment import ERASE_PROBABILITY, augment
from trainer.clip import Clip
from trainer.evaluate import consensus_nll, evaluate_model, stacked_logits
from trainer.layouts import P_LAYOUT, StreamComposer
from trainer.thresholds import choose_thresholds

LOG_EVERY = 10  # steps between progress lines
# From scratch the validation metrics plateau for a few epochs before the next step up
# (docs/training-notes.md: 3 would have stopped a run that reached 100% three epochs later).
PATIENCE = 6
# Early stopping counts only epochs whose training accuracy reaches this: from scratch, two
# classes can share one feature direction for many epochs (the model then gets half of their
# training clips wrong) before they split; see EarlyStopping.
FIT_ACCURACY = 0.95
WARMUP_STEPS = 10
MAX_RESTARTS = 2
# Collapse: over STALL_WINDOW steps the frames' logits never spread more than STALL_RATIO of
# their spread at the first step; healthy and collapsed runs lie far apart (docs/training-notes.md).
STALL_WINDOW = 10
STALL_RATIO = 0.05
WEIGHT_DECAY = 1e-4
LAYOUT_RAMP_EPOCHS = 2  # epochs over which new stream layouts ramp in (layout_share)
# Never sharpen (T < 1): on held-out worlds a T fitted below 1 on the validation channels made the
# model overconfident on streams it had not seen (ECE 0.16 -> 0.29 at T = 0.58, docs/training-notes.md),
# and an underfit model must come out cautious, not sure of its errors.
T_MIN, T_MAX = 1.0, 10.0


@dataclass(frozen=True)
class TrainingSpec:
    """Everything one training run is set to: built from the config once, passed down whole.

    `segments` and `frames_per_segment` are the K and n the model is
    validated, tested and served at (its card records them);
    `train_frames_per_segment` is the m frames per segment a training step
    draws. `max_seconds` bounds the run's wall time (the best epoch so far
    is kept).
    """

    arch: str
    pretrained: str
    segments: int
    frames_per_segment: int
    epochs: int
    batch_size: int
    learning_rate: float
    seed: int
    train_frames_per_segment: int = 1
    erase_probability: float = ERASE_PROBABILITY
    layout_probability: float = P_LAYOUT
    clips_per_epoch: int = 0  # 0: one pass over the training clips
    chatting: str | None = None  # the non-game class: webcam pictures for new layouts, the gameplay threshold
    patience: int = PATIENCE
    log_every: int = LOG_EVERY
    max_seconds: float | None = None
    precision: str = "auto"  # of the training forward pass: "auto", "bf16" or "fp32" (see autocast)
    input_size: int = INPUT_SIZE  # side of the square model input, in training and wherever the model serves

    @classmethod
    def from_config(
        cls,
        cfg: Config,
        *,
        epochs: int | None = None,
        segments: int | None = None,
        frames_per_segment: int | None = None,
        max_seconds: float | None = None,
    ) -> TrainingSpec:
        """Return the spec the config sets ([model], [train], K and n from [monitor]), with the given overrides."""
        return cls(
            arch=cfg.model.arch,
            pretrained=cfg.model.pretrained,
            segments=segments or cfg.monitor.segments,
            frames_per_segment=frames_per_segment or cfg.monitor.frames_per_segment,
            epochs=epochs or cfg.train.epochs,
            batch_size=cfg.train.batch_size,
            learning_rate=cfg.train.learning_rate,
            seed=cfg.train.seed,
            train_frames_per_segment=cfg.train.frames_per_segment,
            erase_probability=cfg.train.erase_probability,
            layout_probability=cfg.train.layout_probability,
            clips_per_epoch=cfg.train.clips_per_epoch,
            chatting=cfg.categories.chatting,
            max_seconds=max_seconds or (cfg.train.max_minutes * 60) or None,
            precision=cfg.train.precision,
            input_size=cfg.train.input_size,
        )

    def replace(self, **changes: object) -> TrainingSpec:
        """Return a copy with some settings changed (`experiment` varies K and n)."""
        return dataclasses.replace(self, **changes)

    @property
    def clips_per_step(self) -> int:
        """Return how many clips one step takes: batch_size frames of K*m each, at least one clip."""
        return max(1, round(self.batch_size / (self.segments * self.train_frames_per_segment)))


@dataclass
class TrainResult:
    """A trained model (best epoch's weights, eval mode) and how training went."""

    model: nn.Module
    classes: list[str]
    spec: TrainingSpec
    history: list[dict]  # per epoch: loss, train_accuracy, val_accuracy, val_frame_accuracy, val_loss, seconds
    train_seconds: float
    temperature: float
    metrics: dict
    best_epoch: int = 0
    config: dict = field(default_factory=dict)  # the card's "training": the spec as run, restarts included
    thresholds: dict = field(default_factory=dict)  # trainer.thresholds, chosen on validation

    def classifier(self, model_id: str = "unsaved") -> Classifier:
        """Wrap the trained model for scoring, with its temperature and sampling."""
        return Classifier.from_model(
            self.model,
            self.classes,
            model_id=model_id,
            arch=self.spec.arch,
            temperature=self.temperature,
            segments=self.spec.segments,
            frames_per_segment=self.spec.frames_per_segment,
            card=self.card(),
            input_size=self.spec.input_size,
        )

    def card(self, **extra: object) -> dict:
        """Return the model card fields training knows; add dataset hash and test metrics via extra."""
        return {
            "arch": self.spec.arch,
            "classes": list(self.classes),
            "segments": self.spec.segments,
            "frames_per_segment": self.spec.frames_per_segment,
            "temperature": self.temperature,
            "preprocessing": preprocessing(self.spec.input_size),
            "input_size": self.spec.input_size,
            "train_seconds": round(self.train_seconds, 2),
            "best_epoch": self.best_epoch,
            "history": self.history,
            "metrics": self.metrics,
            "training": self.config,
            "thresholds": self.thresholds,
            **extra,
        }


def train_classifier(
    train: list[Clip],
    val: list[Clip],
    classes: list[str],
    spec: TrainingSpec,
    *,
    log: Callable[[str], None] = print,
) -> TrainResult:
    """Train, early-stop on validation clip accuracy, keep the best weights, fit the temperature.

    If every unit feeding the head dies (logits stop depending on the input,
    the loss freezes at ln C), training restarts from scratch with a third
    of the learning rate, at most MAX_RESTARTS times, then raises ModelError.
    """
    _check_clips(train, [*classes, GAMEPLAY], "training", allow_empty=False)
    _check_clips(val, classes, "validation", allow_empty=True)
    with training_threads():
        return _train_classifier(train, val, classes, spec, log)


@contextlib.contextmanager
def training_threads() -> Iterator[int]:
    """Give training every core this process may use (OMP_NUM_THREADS wins), then put the count back.

    The count is process-wide: a `run` cycle sets 1, its check slots filling the cores
    (monitor.cycle), and a training that follows in the same process (the demo, the benches'
    in-process commands, a retrain after checks) would otherwise run on one core of two and
    fit fewer epochs into train.max_minutes.
    """
    before = torch.get_num_threads()
    wanted = os.environ.get("OMP_NUM_THREADS", "")
    threads = int(wanted) if wanted.isdigit() and int(wanted) > 0 else len(os.sched_getaffinity(0))
    torch.set_num_threads(threads)
    try:
        yield threads
    finally:
        torch.set_num_threads(before)


def _train_classifier(train: list[Clip], val: list[Clip], classes: list[str], spec: TrainingSpec,
                      log: Callable[[str], None]) -> TrainResult:
    started = time.monotonic()
    composer = StreamComposer(train, spec.chatting, probability=spec.layout_probability)
    # Validation also judges unseen layouts: each validation clip once as stored, once laid out anew
    # (a fixed layout per clip), so early stopping, the temperature and the thresholds see both.
    if spec.layout_probability > 0:
        val = val + [relaid(clip, composer) for clip in val]
    run = _Run(
        spec=spec, composer=composer, classes=list(classes), label_of={c: i for i, c in enumerate(classes)},
        steps=math.ceil((spec.clips_per_epoch or len(train)) / spec.clips_per_step), log=log,
        deadline=started + spec.max_seconds if spec.max_seconds else None,
    )
    log(
        f"training {spec.arch} ({spec.pretrained}) on {len(train)} clips, validating on {len(val)}, "
        f"{len(classes)} classes, K={spec.segments} n={spec.frames_per_segment} "
        f"({spec.train_frames_per_segment} per segment in training), "
        f"{spec.clips_per_step} clips/step, {run.steps} steps/epoch, "
        f"{torch.get_num_threads()} threads, {resolve_precision(spec.precision)}"
    )
    rate = spec.learning_rate
    for attempt in range(MAX_RESTARTS + 1):
        torch.manual_seed(spec.seed + attempt)  # weight init and dropout
        model = build_model(spec.arch, len(classes), spec.pretrained)
        try:
            history, best_epoch = _fit(model, train, val, rate, random.Random(spec.seed + attempt), run)
            break
        except _FeaturesDied as exc:
            if attempt == MAX_RESTARTS:
                raise ModelError(
                    f"training stalled at loss ln({len(classes)}) = {math.log(len(classes)):.4f}: {exc}, "
                    f"also after {MAX_RESTARTS} restarts down to learning rate {rate:.1e}; "
                    "lower train.learning_rate or check the pretrained weights"
                ) from None
            rate /= 3
            log(f"{exc} (loss stuck at ln C): restarting from scratch with learning rate {rate:.1e}")
    temperature, calibration, thresholds = _calibrate(model, val, run)
    train_seconds = time.monotonic() - started
    result = TrainResult(
        model=model, classes=list(classes), spec=spec, history=history, train_seconds=train_seconds,
        temperature=temperature, metrics={}, best_epoch=best_epoch,
        config=_training_record(spec, final_learning_rate=rate, restarts=attempt,
                                gameplay_clips=sum(c.label == GAMEPLAY for c in train)), thresholds=thresholds,
    )
    result.metrics = _final_metrics(result, train, val, calibration)
    log(
        f"done in {train_seconds:.0f}s: best epoch {best_epoch}, train accuracy "
        f"{result.metrics['train_accuracy']:.3f}, val accuracy {result.metrics.get('val_accuracy', float('nan')):.3f}, "
        f"temperature {temperature:.3f}"
    )
    return result


def _training_record(spec: TrainingSpec, *, final_learning_rate: float, restarts: int, gameplay_clips: int) -> dict:
    """Return what the model card keeps under "training": the settings as run."""
    return {
        "pretrained": spec.pretrained, "epochs": spec.epochs, "batch_size": spec.batch_size,
        "learning_rate": spec.learning_rate, "final_learning_rate": final_learning_rate, "restarts": restarts,
        "seed": spec.seed, "train_frames_per_segment": spec.train_frames_per_segment,
        "clips_per_epoch": spec.clips_per_epoch or "one pass",
        "clips_per_step": spec.clips_per_step, "loss": "tsn-consensus-ce", "sampling": "class-balanced",
        # Clips of games that are no class, trained towards "some game, none of the known ones".
        "gameplay_clips": gameplay_clips,
        "precision": resolve_precision(spec.precision),
        "augment": f"stream layouts p={spec.layout_probability}, shallow-crop, downscale, colour, jpeg, "
                   f"erase p={spec.erase_probability}; no flip",
    }


@dataclass
class _Run:
    """One run of a spec: the spec, and what follows from the data and the clock."""

    spec: TrainingSpec
    composer: StreamComposer
    classes: list[str]
    label_of: dict[str, int]
    steps: int
    log: Callable[[str], None]
    deadline: float | None

    def targets(self, labels: Sequence[str]) -> torch.Tensor:
        """Return the clips' target distributions: one-hot for a class; for GAMEPLAY, even over the games.

        A GAMEPLAY clip shows a game that is no class (dataset.other_games, or a human's "gameplay"
        label). Its target says "a game, and none of these more than another": chatting gets 0, so
        1 - p(chatting) stays the gameplay probability, and no game's share reaches min_confidence,
        so the verdict says "gameplay" instead of naming a known game (outlier exposure, Hendrycks
        et al. 2019). Without a chatting class every class is a game.
        """
        out = torch.zeros(len(labels), len(self.classes))
        games = [i for i, c in enumerate(self.classes) if c != self.spec.chatting]
        for row, label in enumerate(labels):
            if label == GAMEPLAY:
                out[row, games] = 1.0 / len(games)
            else:
                out[row, self.label_of[label]] = 1.0
        return out

    def scorer(self, model: nn.Module) -> Classifier:
        """Wrap the model being trained as inference scores it (test-mode K x n, temperature 1)."""
        return Classifier.from_model(model, self.classes, arch=self.spec.arch, segments=self.spec.segments,
                                     input_size=self.spec.input_size,
                                     frames_per_segment=self.spec.frames_per_segment)


class _FeaturesDied(Exception):
    """Every unit feeding the head outputs zero for every input: no gradient can revive them."""


def _fit(
    model: nn.Module, train: list[Clip], val: list[Clip], learning_rate: float, rng: random.Random, run: _Run
) -> tuple[list[dict], int]:
    """Run the epochs with early stopping; leave the best epoch's weights in model (eval mode)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=WEIGHT_DECAY)
    plan = EpochPlan(run.spec.epochs, run.steps)
    schedule = _schedule(optimizer, plan)
    history: list[dict] = []
    stopper = EarlyStopping(run.spec.patience, validated=bool(val))
    best_state: dict = {}
    stall = _StallWatch()
    net = distributed.wrap(model)  # under torchrun: DDP (trainer/distributed.py)
    epoch = 0
    while epoch < plan.epochs:
        epoch += 1
        epoch_started = time.monotonic()
        stats = _train_epoch(net, optimizer, schedule, train, rng, epoch, run, stall)
        interrupted = stats.pop("interrupted")
        row = {"epoch": epoch, **distributed.mean_over_ranks(stats)}
        if val:
            on_val = distributed.gathered(evaluate_model(run.scorer(model), val))
            row.update(val_accuracy=on_val.clip_accuracy, val_frame_accuracy=on_val.frame_accuracy,
                       val_loss=on_val.nll)
        row["seconds"] = round(time.monotonic() - epoch_started, 2)
        history.append(row)
        if run.deadline is not None and plan.fit_to(epoch, row["seconds"], run.deadline - time.monotonic()):
            run.log(f"the time budget holds {plan.epochs} epochs at {row['seconds']:.0f}s each: "
                    f"the learning rate now decays to zero by epoch {plan.epochs}")
        improved = stopper.update(row)
        if improved:
            best_state = copy.deepcopy(model.state_dict())
        run.log(_epoch_line(row, run.spec.epochs, improved))
        if interrupted:
            run.log(f"time budget reached in epoch {epoch}: stopping")
            break
        if stopper.should_stop:
            run.log(f"no better validation accuracy or loss for {run.spec.patience} epochs with the training clips fit: "
                    "stopping early")
            break
    model.load_state_dict(best_state)
    model.eval()
    return history, stopper.best_epoch


class EarlyStopping:
    """Keep the best epoch and tell when to stop: `patience` epochs without progress, counted only once fit.

    Best: the highest validation clip accuracy, ties broken by lower validation
    loss (without validation: training accuracy, then training loss). An epoch
    is progress if it is the best so far or lowers the validation loss: from
    scratch, accuracy on a few validation clips plateaus for epochs while the
    loss still falls. An epoch whose training accuracy is below FIT_ACCURACY
    does not count either way: the model still gets its own training clips
    wrong, which is underfitting, and more epochs cure it; early stopping
    guards against overfitting. Without validation it never stops early.
    """

    def __init__(self, patience: int, *, validated: bool):
        self.patience = patience
        self.validated = validated
        self.best: tuple[float, float] | None = None
        self.best_epoch = 0
        self.stale = 0
        self.lowest_val_loss = math.inf

    def update(self, row: dict) -> bool:
        """Record one epoch's history row; return whether it is the best so far."""
        if self.validated:
            score = (row["val_accuracy"], -row["val_loss"])
        else:
            score = (row["train_accuracy"], -row["loss"])
        improved = self.best is None or score > self.best
        if improved:
            self.best, self.best_epoch, self.stale = score, row["epoch"], 0
        elif self.validated and row["val_loss"] < self.lowest_val_loss:
            self.stale = 0
        elif row["train_accuracy"] >= FIT_ACCURACY:
            self.stale += 1
        if self.validated:
            self.lowest_val_loss = min(self.lowest_val_loss, row["val_loss"])
        return improved

    @property
    def should_stop(self) -> bool:
        return self.validated and self.stale >= self.patience


def _check_clips(clips: Sequence[Clip], classes: Sequence[str], what: str, *, allow_empty: bool) -> None:
    if not clips and not allow_empty:
        raise DatasetError(f"no {what} clips: build the dataset first (`twitchwatch dataset build`)")
    if len(set(classes)) != len(classes) or not classes:
        raise DatasetError(f"classes must be a non-empty list without repeats, got {list(classes)}")
    known = set(classes)
    for clip in clips:
        if clip.label not in known:
            raise DatasetError(f"{what} clip {clip.clip_id} has label {clip.label!r}, not one of the classes")
        if not clip.frames:
            raise DatasetError(f"{what} clip {clip.clip_id} has no frames")


class EpochPlan:
    """How many epochs a run will take: `spec.epochs`, or fewer once the time budget shows they cannot all fit.

    A budget that only cut the run short would stop it at a high learning
    rate, half-trained; shrinking the plan instead lets the cosine decay
    reach zero by the last epoch that fits. Every rank of a distributed run
    decides on the same mean epoch time.
    """

    def __init__(self, epochs: int, steps_per_epoch: int):
        self.epochs = epochs
        self.steps_per_epoch = steps_per_epoch
        self.warmup = max(1, min(WARMUP_STEPS, self.total_steps // 5))  # fixed at the start

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def fit_to(self, done: int, epoch_seconds: float, seconds_left: float) -> bool:
        """After `done` epochs, keep only the epochs that fit in seconds_left; return whether the plan shrank."""
        epoch_seconds = distributed.mean_over_ranks({"s": epoch_seconds})["s"]
        fits = done + max(0, math.floor(seconds_left / max(epoch_seconds, 1e-9)))
        if fits >= self.epochs:
            return False
        self.epochs = fits
        return True


def _schedule(optimizer: torch.optim.Optimizer, plan: EpochPlan) -> torch.optim.lr_scheduler.LRScheduler:
    """Warm up linearly, then decay with a cosine to zero at the plan's last step (which may move earlier).

    From random init the first full-size steps overshoot (the loss jumps far
    above ln C before it falls); a short warm-up avoids it.
    """

    def factor(step: int) -> float:
        if step < plan.warmup:
            return (step + 1) / plan.warmup
        progress = (step - plan.warmup) / max(1, plan.total_steps - plan.warmup)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    clips: list[Clip],
    rng: random.Random,
    epoch: int,
    run: _Run,
    stall: _StallWatch,
) -> dict:
    """Run one epoch; return its mean loss, running train accuracy and whether the deadline cut it."""
    model.train()
    order = balanced_order(clips, rng, run.spec.clips_per_epoch or len(clips))
    layouts = layout_share(run.spec.layout_probability, epoch)
    per_clip = run.spec.segments * run.spec.train_frames_per_segment
    loss_sum = correct = seen = seen_known = 0.0
    interrupted = False
    for step in range(run.steps):
        batch = order[step * run.spec.clips_per_step : (step + 1) * run.spec.clips_per_step]
        frames = [
            augment(frame, rng, run.spec.erase_probability)
            for clip in batch
            for frame in run.composer.compose(
                [clip.frames[i] for i in sample_indices(len(clip.frames), run.spec.segments,
                                                        run.spec.train_frames_per_segment, "train", rng)],
                clip.label, rng, probability=layouts)
        ]
        targets = run.targets([clip.label for clip in batch])
        with autocast(run.spec.precision):
            frame_logits = model(preprocess(frames, run.spec.input_size)).float()
        logits = frame_logits.view(len(batch), per_clip, -1).mean(dim=1)  # segmental consensus
        loss = F.cross_entropy(logits, targets)
        known = torch.tensor([clip.label != GAMEPLAY for clip in batch])  # GAMEPLAY has no class to get right
        if distributed.any_rank(not torch.isfinite(loss)):
            raise ModelError(
                f"training diverged at epoch {epoch} step {step + 1} (loss {float(loss)}): lower train.learning_rate"
            )
        if distributed.any_rank(stall.collapsed(frame_logits)):
            raise _FeaturesDied(f"the features died by epoch {epoch} step {step + 1}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        loss_sum += float(loss.detach()) * len(batch)
        correct += float((logits.argmax(dim=1) == targets.argmax(dim=1))[known].sum())
        seen += len(batch)
        seen_known += int(known.sum())
        if run.spec.log_every and (step + 1) % run.spec.log_every == 0:
            run.log(
                f"epoch {epoch}/{run.spec.epochs} step {step + 1}/{run.steps} loss {loss_sum / seen:.4f} "
                f"acc {correct / max(1, seen_known):.3f} lr {schedule.get_last_lr()[0]:.2e}"
            )
        if run.deadline is not None and distributed.any_rank(time.monotonic() > run.deadline):
            interrupted = True
            break
    return {"loss": loss_sum / seen, "train_accuracy": correct / max(1, seen_known), "interrupted": interrupted}


def bf16_native() -> bool:
    """Return whether this CPU runs bfloat16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated, slower."""
    return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def resolve_precision(precision: str) -> str:
    """Return "bf16" or "fp32" for a `train.precision` setting ("auto": bf16 where the CPU has it natively)."""
    if precision == "auto":
        return "bf16" if bf16_native() else "fp32"
    if precision not in ("bf16", "fp32"):
        raise ModelError(f"unknown training precision {precision!r}: expected auto, bf16 or fp32")
    return precision


def autocast(precision: str) -> contextlib.AbstractContextManager:
    """Return the context a training forward pass runs in: CPU autocast to bfloat16, or nothing for fp32.

    Autocast keeps the weights, their gradients and the optimiser in fp32 and
    runs convolutions and matmuls in bf16; the loss is taken on fp32 logits.
    """
    if resolve_precision(precision) == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


class _StallWatch:
    """Spot collapsed features: frame logits that have stopped depending on the input.

    When the ReLUs feeding the head (nearly) all die, every frame gets the
    head's bias as logits, the loss freezes at ln C and almost no gradient
    is left to revive them: the run is lost, only a restart helps.
    """

    def __init__(self) -> None:
        self.reference: float | None = None
        self.recent: deque[float] = deque(maxlen=STALL_WINDOW)

    def collapsed(self, frame_logits: torch.Tensor) -> bool:
        """Record one step's logits; tell whether the features have collapsed."""
        if frame_logits.shape[0] < 2:  # one frame says nothing about input dependence
            return False
        logits = frame_logits.detach()
        spread = float((logits - logits.mean(dim=0)).abs().max())
        if self.reference is None:
            self.reference = spread
            return False
        self.recent.append(spread)
        return len(self.recent) == STALL_WINDOW and max(self.recent) < max(STALL_RATIO * self.reference, 1e-6)


def fit_temperature(logits: torch.Tensor, labels: Sequence[int]) -> float:
    """Fit one temperature T minimising the clip NLL of mean softmax(logits / T) (LBFGS on log T).

    `logits` is (clips, frames, classes). T is clamped to [T_MIN, T_MAX];
    if fitting fails or does not lower the NLL, 1.0 is returned.
    """
    target = torch.tensor(list(labels))
    logits = logits.detach()
    if not torch.isfinite(logits).all():
        return 1.0
    log_t = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.5, max_iter=50, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = consensus_nll(logits, target, log_t.clamp(-10, 10).exp())
        loss.backward()
        return loss

    try:
        optimizer.step(closure)
    except RuntimeError:  # the line search can overflow on degenerate logits
        return 1.0
    fitted = float(log_t.detach().exp().clamp(T_MIN, T_MAX))
    with torch.no_grad():
        if not math.isfinite(fitted) or consensus_nll(logits, target, fitted) > consensus_nll(logits, target, 1.0):
            return 1.0
    return fitted


def _calibrate(model: nn.Module, val: list[Clip], run: _Run) -> tuple[float, dict, dict]:
    """Fit the temperature on the validation clips, then choose the verdict thresholds on them."""
    log = run.log
    if not val:
        log("no validation clips: temperature left at 1.0, thresholds left to the defaults")
        return 1.0, {}, {}
    logits, labels = distributed.gathered_logits(stacked_logits(run.scorer(model), val),
                                                 [run.label_of[c.label] for c in val], val)
    temperature = fit_temperature(logits, labels)
    target = torch.tensor(labels)
    with torch.no_grad():
        before = float(consensus_nll(logits, target, 1.0))
        after = float(consensus_nll(logits, target, temperature))
        probs = torch.softmax(logits / temperature, dim=2).mean(dim=1).numpy()
    thresholds = choose_thresholds(probs, [run.classes[i] for i in labels], run.classes, run.spec.chatting)
    log(f"temperature {temperature:.3f}: validation NLL {before:.4f} -> {after:.4f}; thresholds "
        f"min_confidence {thresholds['min_confidence']}, gameplay {thresholds.get('gameplay', 'n/a')}")
    return temperature, {"val_nll_uncalibrated": before, "val_nll": after}, thresholds


def layout_share(probability: float, epoch: int) -> float:
    """Return the share of clips laid out anew in this epoch: none in the first, full from LAYOUT_RAMP_EPOCHS + 1.

    From random init a model first has to find the games at all; with most
    clips in new layouts from the first step the loss stayed at ln C for a
    whole epoch (96 steps) and the stall guard restarted the run
    (docs/training-notes.md). The stored compositions come first, then the
    new layouts ramp in.
    """
    return probability * min(1.0, max(0.0, (epoch - 1) / LAYOUT_RAMP_EPOCHS))


def balanced_order(clips: Sequence[Clip], rng: random.Random, count: int | None = None) -> list[Clip]:
    """Return an epoch's `count` clips (default: as many as given), every class (about) equally often, shuffled.

    Each class gets count / classes places (the remainder to classes drawn
    at random), filled by its clips in a shuffled cycle, so a balanced set
    gives a plain shuffle of every clip once and a small class is repeated
    rather than outvoted.
    """
    count = len(clips) if count is None else count
    by_class: dict[str, list[Clip]] = {}
    for clip in clips:
        by_class.setdefault(clip.label, []).append(clip)
    labels = sorted(by_class)
    rng.shuffle(labels)
    share, extra = divmod(count, len(labels)) if labels else (0, 0)
    out: list[Clip] = []
    for rank, label in enumerate(labels):
        members = list(by_class[label])
        rng.shuffle(members)
        out.extend(members[i % len(members)] for i in range(share + (rank < extra)))
    rng.shuffle(out)
    return out


def relaid(clip: Clip, composer: StreamComposer) -> Clip:
    """Return a copy of the clip in one new layout, the same every run (seeded by the clip id)."""
    frames = composer.compose(clip.frames, clip.label, random.Random(f"relaid:{clip.clip_id}"), always=True)
    return Clip(clip_id=clip.clip_id + "~relaid", label=clip.label, channel=clip.channel, frames=frames)


def _final_metrics(result: TrainResult, train: list[Clip], val: list[Clip], calibration: dict) -> dict:
    clf = result.classifier()
    on_train = distributed.gathered(evaluate_model(clf, [c for c in train if c.label != GAMEPLAY]))
    metrics = {
        "train_accuracy": on_train.clip_accuracy,
        "train_frame_accuracy": on_train.frame_accuracy,
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "temperature": result.temperature,
        **calibration,
    }
    if val:
        on_val = distributed.gathered(evaluate_model(clf, val))
        metrics.update(
            val_accuracy=on_val.clip_accuracy, val_frame_accuracy=on_val.frame_accuracy, val=on_val.summary()
        )
    return metrics


def _epoch_line(row: dict, epochs: int, improved: bool) -> str:
    parts = [f"epoch {row['epoch']}/{epochs} done: loss {row['loss']:.4f} train acc {row['train_accuracy']:.3f}"]
    if "val_accuracy" in row:
        parts.append(
            f"val acc {row['val_accuracy']:.3f} val frame acc {row['val_frame_accuracy']:.3f} "
            f"val loss {row['val_loss']:.4f}"
        )
    parts.append(f"{row['seconds']:.1f}s" + (" (best)" if improved else ""))
    return ", ".join(parts)
