"""TSN training from scratch, its metrics, temperature fitting, and the training augmentations."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn
from toydata import toy_frame

from monitor.classify import build_model
from monitor.errors import DatasetError, ModelError
from monitor.model_registry import ModelRegistry
from monitor.verdict import GAMEPLAY
from trainer.augment import MAX_CUT, augment, random_erase, shallow_crop
from trainer.clip import Clip
from trainer.evaluate import evaluate_model
from trainer.registry import save_model
from trainer.train import (
    FIT_ACCURACY,
    MAX_RESTARTS,
    EarlyStopping,
    EpochPlan,
    TrainingSpec,
    _schedule,
    fit_temperature,
    resolve_precision,
    train_classifier,
)


def toy_clips(per_class: int, seed: int, frames: int = 6) -> list[Clip]:
    rs = np.random.default_rng(seed)
    return [
        Clip(f"c{c}-{k}", str(c), f"channel{k}", [toy_frame(c, rs) for _ in range(frames)])
        for c in range(3)
        for k in range(per_class)
    ]


def spec(**settings) -> TrainingSpec:
    """A SqueezeNet 1.1 from scratch with the given settings."""
    return TrainingSpec(arch="squeezenet1_1", pretrained=settings.pop("pretrained", "none"), **settings)


def test_training_learns_three_clearly_different_scenes_from_scratch(tmp_path):
    lines: list[str] = []
    result = train_classifier(
        toy_clips(6, seed=1), toy_clips(2, seed=2), ["0", "1", "2"],
        spec(segments=2, frames_per_segment=1, epochs=5, batch_size=2, learning_rate=3e-4, seed=0, log_every=9),
        log=lines.append,
    )
    # the ln(3) stall would leave the loss at 1.0986 and the accuracy at 1/3
    assert result.metrics["val_accuracy"] == 1.0
    assert result.history[0]["loss"] > result.history[result.best_epoch - 1]["loss"]
    assert result.metrics["train_accuracy"] >= 0.9
    assert 0.25 <= result.temperature <= 10
    assert [row["epoch"] for row in result.history] == list(range(1, len(result.history) + 1))
    assert any("step 18/18" in line for line in lines) and any("val acc" in line for line in lines)
    val = result.metrics["val"]
    # each validation clip twice: as stored and laid out anew (trainer.layouts)
    assert val["confusion"] == [[4, 0, 0], [0, 4, 0], [0, 0, 4]]

    model_id = save_model(tmp_path, result.model, result.card(dataset_hash="toy"))
    reloaded = ModelRegistry(tmp_path).load(model_id)
    assert reloaded.temperature == pytest.approx(result.temperature)
    assert reloaded.card["thresholds"] == result.thresholds and result.thresholds["chosen_on"] == "validation"
    assert evaluate_model(reloaded, toy_clips(2, seed=2)).confusion() == [[2, 0, 0], [0, 2, 0], [0, 0, 2]]


def test_clips_of_games_that_are_no_class_teach_the_model_to_name_none_of_the_known_games():
    # Classes: two games ("0", "1") and chatting ("2"); scene 3 is a game of no class (GAMEPLAY).
    rs = np.random.default_rng(5)
    unknown = [Clip(f"g-{k}", GAMEPLAY, f"other{k}", [toy_frame(3, rs) for _ in range(6)]) for k in range(6)]
    result = train_classifier(
        toy_clips(6, seed=1) + unknown, toy_clips(2, seed=2), ["0", "1", "2"],
        spec(segments=2, frames_per_segment=1, epochs=6, batch_size=2, learning_rate=3e-4, seed=0,
             chatting="2", layout_probability=0.0),
        log=lambda _: None,
    )
    assert result.config["gameplay_clips"] == 6
    assert result.metrics["val_accuracy"] == 1.0  # the known classes are still told apart
    clf = result.classifier()
    fresh = np.random.default_rng(9)
    for _ in range(3):
        scores = clf.score([toy_frame(3, fresh) for _ in range(2)]).scores
        assert scores["2"] < 0.2  # a game is on screen: not chatting
        assert max(scores["0"], scores["1"]) < 0.75  # and neither known game is named


def test_one_frame_per_segment_in_training_fits_more_clips_per_step():
    # TSN trains on one snippet per segment: K=2 frames per clip, so a 4-frame batch holds
    # 2 clips (9 steps for 18 clips); with all 3 frames per segment it would hold 1 (18 steps).
    lines: list[str] = []
    result = train_classifier(
        toy_clips(6, seed=1), toy_clips(2, seed=2), ["0", "1", "2"],
        spec(segments=2, frames_per_segment=3, train_frames_per_segment=1, epochs=5, batch_size=4,
             learning_rate=3e-4, seed=0, log_every=0),
        log=lines.append,
    )
    assert "2 clips/step, 9 steps/epoch" in lines[0]
    assert result.metrics["val_accuracy"] == 1.0
    assert result.card()["frames_per_segment"] == 3  # inference still samples 3 per segment
    assert result.config["train_frames_per_segment"] == 1 and result.config["clips_per_step"] == 2


def test_time_budget_stops_training_but_returns_a_model():
    lines: list[str] = []
    result = train_classifier(
        toy_clips(2, seed=3, frames=2), toy_clips(1, seed=4, frames=2), ["0", "1", "2"],
        spec(segments=1, frames_per_segment=1, epochs=50, batch_size=1, learning_rate=3e-4, seed=0,
             max_seconds=0.001),
        log=lines.append,
    )
    assert len(result.history) == 1
    assert any("time budget" in line for line in lines)
    assert isinstance(result.model, nn.Module) and not result.model.training


def test_training_after_a_run_cycle_uses_every_core_and_leaves_the_cycles_count(monkeypatch):
    # A `run` cycle sets one torch thread per check slot; a training later in that process (the
    # demo, the benches, a retrain) ran on that one thread, fitting fewer epochs into the budget.
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2})
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        lines: list[str] = []
        train_classifier(toy_clips(1, seed=3, frames=2), [], ["0", "1", "2"],
                         spec(segments=1, frames_per_segment=1, epochs=1, batch_size=1, learning_rate=3e-4, seed=0),
                         log=lines.append)
        assert any(" 3 threads" in line for line in lines)
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "2")  # an operator's (or torchrun's) choice wins
        lines.clear()
        train_classifier(toy_clips(1, seed=3, frames=2), [], ["0", "1", "2"],
                         spec(segments=1, frames_per_segment=1, epochs=1, batch_size=1, learning_rate=3e-4, seed=0),
                         log=lines.append)
        assert any(" 2 threads" in line for line in lines)
    finally:
        torch.set_num_threads(before)


def test_a_budget_that_cannot_hold_every_epoch_plans_fewer_and_decays_the_rate_to_zero_by_the_last():
    plan = EpochPlan(epochs=10, steps_per_epoch=5)
    optimizer = torch.optim.AdamW(nn.Linear(2, 2).parameters(), lr=1.0)
    schedule = _schedule(optimizer, plan)
    assert not plan.fit_to(1, epoch_seconds=10.0, seconds_left=95.0)  # 1 done + 9 that fit: all 10
    for _ in range(2 * plan.steps_per_epoch):
        optimizer.step()
        schedule.step()
    rate_before = schedule.get_last_lr()[0]
    assert plan.fit_to(2, epoch_seconds=10.0, seconds_left=35.0)  # 2 done + 3 that fit
    assert plan.epochs == 5 and plan.total_steps == 25
    rates = []
    for _ in range(3 * plan.steps_per_epoch):
        optimizer.step()
        schedule.step()
        rates.append(schedule.get_last_lr()[0])
    assert rates[0] < rate_before and rates == sorted(rates, reverse=True) and rates[-1] == 0.0
    assert not plan.fit_to(5, epoch_seconds=10.0, seconds_left=100.0)  # a plan never grows back
    assert plan.epochs == 5


def test_bf16_training_learns_the_toy_scenes_and_the_card_records_it():
    result = train_classifier(
        toy_clips(6, seed=1), toy_clips(2, seed=2), ["0", "1", "2"],
        spec(segments=2, frames_per_segment=1, epochs=5, batch_size=2, learning_rate=3e-4, seed=0, log_every=0,
             precision="bf16"),
        log=lambda line: None,
    )
    assert result.config["precision"] == "bf16"
    assert result.metrics["val_accuracy"] == 1.0
    assert all(p.dtype == torch.float32 for p in result.model.parameters())  # autocast leaves the weights fp32


def test_a_model_trained_on_smaller_inputs_records_the_size_and_is_served_at_it(tmp_path):
    result = train_classifier(
        toy_clips(6, seed=1), toy_clips(2, seed=2), ["0", "1", "2"],
        spec(segments=2, frames_per_segment=1, epochs=5, batch_size=2, learning_rate=3e-4, seed=0, log_every=0,
             input_size=128),
        log=lambda line: None,
    )
    assert result.metrics["val_accuracy"] == 1.0
    card = result.card(dataset_hash="toy")
    assert card["input_size"] == card["preprocessing"]["input_size"] == 128
    model_id = save_model(tmp_path, result.model, card)
    reloaded = ModelRegistry(tmp_path).load(model_id)
    seen: list[tuple[int, ...]] = []
    reloaded.model.register_forward_pre_hook(lambda module, args: seen.append(tuple(args[0].shape)))
    frames = toy_clips(1, seed=9)[0].frames  # 224 x 224 as stored; a capture's 640 x 360 goes the same way
    reloaded.score(frames + [np.zeros((360, 640, 3), np.uint8)])
    assert reloaded.input_size == 128 and seen == [(len(frames) + 1, 3, 128, 128)]
    assert evaluate_model(reloaded, toy_clips(2, seed=2)).clip_accuracy == 1.0


def test_an_unknown_training_precision_is_refused():
    assert resolve_precision("fp32") == "fp32" and resolve_precision("auto") in ("bf16", "fp32")
    with pytest.raises(ModelError, match="unknown training precision 'fp16'"):
        resolve_precision("fp16")


def test_dead_features_restart_then_fail_with_a_clear_error(tmp_path):
    # Weights whose last Fire module can only output zeros: logits no longer depend on the frame.
    model = build_model("squeezenet1_1", 3)
    with torch.no_grad():
        model.features[12].expand1x1.bias.fill_(-1e4)
        model.features[12].expand3x3.bias.fill_(-1e4)
    path = tmp_path / "dead.pt"
    torch.save(model.state_dict(), path)
    lines: list[str] = []
    with pytest.raises(ModelError, match=r"ln\(3\)"):
        train_classifier(
            toy_clips(4, seed=5, frames=2), [], ["0", "1", "2"],
            spec(pretrained=str(path), segments=1, frames_per_segment=2, epochs=3, batch_size=2, learning_rate=1e-3,
                 seed=0),
            log=lines.append,
        )
    assert sum("restarting from scratch" in line for line in lines) == MAX_RESTARTS


def colour_clip(clip_id: str, label: str, rgb: tuple[int, int, int]) -> Clip:
    return Clip(clip_id, label, "ch", [np.full((30, 40, 3), rgb, np.uint8) for _ in range(5)])


@pytest.mark.parametrize(
    ("train", "message"),
    [([], "no training clips"), ([Clip("e", "0", "ch", [])], "no frames"),
     ([colour_clip("u", "9", (0, 0, 0))], "'9'")],
)
def test_training_refuses_unusable_clips(train, message):
    with pytest.raises(DatasetError, match=message):
        train_classifier(train, [], ["0", "1"],
                         spec(segments=1, frames_per_segment=1, epochs=1, batch_size=1, learning_rate=1e-3, seed=0),
                         log=lambda s: None)


def test_temperature_above_one_for_an_overconfident_model():
    # right on 6 clips with logit margin 8, wrong on 4 with the same margin: far too sure
    logits = torch.zeros(10, 3, 2)
    logits[:, :, 0] = 8.0
    labels = [0] * 6 + [1] * 4
    assert fit_temperature(logits, labels) > 2


def test_an_underconfident_model_is_never_sharpened():
    # Right on every validation clip, but unsure: the NLL would fall with T < 1, yet T stays 1 (T_MIN),
    # as a sharper model is overconfident on streams unlike the validation channels.
    logits = torch.zeros(10, 3, 2)
    logits[:, :, 0] = 0.5
    assert fit_temperature(logits, [0] * 10) == 1.0


def test_augment_keeps_size_type_and_corners():
    frame = np.zeros((180, 320, 3), np.uint8)
    box = int(0.1 * 180), int(0.1 * 320)  # HUD boxes a bit larger than the deepest cut
    for ys in (slice(0, box[0]), slice(-box[0], None)):
        for xs in (slice(0, box[1]), slice(-box[1], None)):
            frame[ys, xs] = 255
    rng = random.Random(0)
    for _ in range(50):
        out = augment(frame, rng, erase_probability=0)  # a box may cover a corner
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
        assert out.shape[0] >= 180 * 0.5 * (1 - 2 * MAX_CUT) - 1
        centre = out[out.shape[0] // 2, out.shape[1] // 2].mean()
        for y, x in ((0, 0), (0, -1), (-1, 0), (-1, -1)):
            assert out[y, x].mean() > centre + 100


def test_augment_never_flips():
    frame = np.zeros((90, 160, 3), np.uint8)
    frame[:, :40] = 255  # a chat panel on the left
    rng = random.Random(1)
    for _ in range(50):
        out = augment(frame, rng, erase_probability=0)  # or the panel
        assert out[:, : out.shape[1] // 8].mean() > out[:, -out.shape[1] // 8 :].mean() + 100


def test_augment_is_deterministic_with_a_seeded_rng():
    frame = np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8)
    a, b = augment(frame, random.Random(9)), augment(frame, random.Random(9))
    assert np.array_equal(a, b)
    cut = shallow_crop(frame, random.Random(9))
    assert cut.shape[0] >= 60 * (1 - 2 * MAX_CUT) and cut.shape[1] >= 80 * (1 - 2 * MAX_CUT)



def epoch_row(epoch: int, train_accuracy: float, val_accuracy: float, val_loss: float) -> dict:
    return {"epoch": epoch, "loss": 0.2, "train_accuracy": train_accuracy, "val_accuracy": val_accuracy,
            "val_loss": val_loss}


def test_early_stopping_waits_while_the_training_clips_are_not_fit():
    # Epochs 10-19 of a real run on the default scenario: two classes shared one feature
    # direction, half their training clips wrong, validation flat at 87.5%.
    plateau = [(0.750, 0.875, 0.325), (0.885, 0.875, 0.213), (0.854, 0.875, 0.234), (0.854, 0.875, 0.191),
               (0.823, 0.625, 0.521), (0.760, 0.875, 0.250), (0.854, 0.875, 0.192), (0.906, 0.875, 0.213),
               (0.865, 0.875, 0.215), (0.906, 0.875, 0.214)]
    stopper = EarlyStopping(patience=6, validated=True)
    for epoch, (train_acc, val_acc, val_loss) in enumerate(plateau, start=10):
        stopper.update(epoch_row(epoch, train_acc, val_acc, val_loss))
        assert not stopper.should_stop
    assert stopper.best_epoch == 13
    # once the training clips are fit, 6 epochs without progress end the run
    for epoch in range(20, 26):
        assert not stopper.should_stop
        assert not stopper.update(epoch_row(epoch, FIT_ACCURACY, 0.875, 0.3))
    assert stopper.should_stop and stopper.best_epoch == 13


def test_early_stopping_counts_a_lower_validation_loss_as_progress():
    stopper = EarlyStopping(patience=2, validated=True)
    assert stopper.update(epoch_row(1, 1.0, 0.9, 0.50))
    assert not stopper.update(epoch_row(2, 1.0, 0.8, 0.40))  # worse accuracy, lower loss: progress
    assert not stopper.update(epoch_row(3, 1.0, 0.8, 0.45))
    assert not stopper.should_stop
    assert not stopper.update(epoch_row(4, 1.0, 0.8, 0.45))
    assert stopper.should_stop and stopper.best_epoch == 1


def test_without_validation_the_best_epoch_is_chosen_on_training_and_it_never_stops_early():
    stopper = EarlyStopping(patience=1, validated=False)
    for epoch, (acc, loss) in enumerate([(0.5, 1.0), (0.9, 0.4), (0.9, 0.5), (0.8, 0.6)], start=1):
        stopper.update({"epoch": epoch, "train_accuracy": acc, "loss": loss})
    assert stopper.best_epoch == 2 and not stopper.should_stop


def test_random_erase_covers_one_bounded_rectangle_and_leaves_the_input_alone():
    frame = np.zeros((100, 160, 3), np.uint8)
    for seed in range(50):
        out = random_erase(frame, random.Random(seed), max_area=0.25)
        assert out.shape == frame.shape and not frame.any()
        covered = out.any(axis=2)
        rows, cols = np.nonzero(covered)
        if rows.size:  # a random colour of (0, 0, 0) leaves nothing to see
            box = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
            assert box == covered.sum() <= 0.25 * frame.size / 3 * 1.1


def test_half_the_augmented_frames_get_an_erased_box():
    frame = np.full((90, 160, 3), 128, np.uint8)
    rng = random.Random(2)
    # crops, scaling and colour keep a flat frame flat: a second colour is an erased box
    boxed = sum(len(np.unique(augment(frame, rng).reshape(-1, 3), axis=0)) > 1 for _ in range(200))
    assert 60 <= boxed <= 140
