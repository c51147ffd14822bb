"""Retrain: the promotion rule, champion against challenger on real model files, and the CLI end to end.

The CLI tests train on the toy dataset of tests/toydata.py instead of
downloaded clips: training on it takes seconds and a model trained for 4
epochs beats an untrained one.
"""

from __future__ import annotations

import json
import shutil
import signal
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_cli
from proc_helpers import start_process, stop_process, wait_for
from toydata import CLASSES, toy_config, toy_frame, write_toy_dataset

from monitor.classify import build_model
from monitor.errors import DatasetError, ModelError
from monitor.model_registry import ModelRegistry
from trainer.clip import Clip
from trainer.dataset import Dataset
from trainer.registry import save_model
from trainer.retrain import (
    GATE_ORDER,
    GatePolicy,
    Standing,
    check_comparable,
    compare_and_promote,
    promotion_decision,
)
from trainer.retrain_textfile import read_values

GATE_NAMES = {*GATE_ORDER, "all_passed"}
INTERFACE_KEYS = {"model_id", "promoted", "test_accuracy", "test_frame_accuracy", "train_accuracy", "classes"}


# -- the promotion rule --------------------------------------------------------------------------


def standing(correct: int, clips: int, nll: float, recall: dict | None = None,
             right: str | None = None) -> Standing:
    """A Standing; `right` is a string of 1/0 per clip (clips c0, c1, ...) for the paired test."""
    correctness = {f"c{i}": flag == "1" for i, flag in enumerate(right)} if right else {}
    return Standing(correct, clips, nll, recall or {}, correctness)


@pytest.mark.parametrize(
    ("champion", "challenger", "promoted", "gate", "says"),
    [
        (None, Standing(3, 10, 2.0), True, "no_champion", "no active model"),
        (Standing(7, 10, 0.5), Standing(8, 10, 0.9), True, "all_passed",
         "challenger 8/10 test clips right (80.0%), champion 7 (70.0%)"),
        (Standing(8, 10, 0.9), Standing(7, 10, 0.1), False, "accuracy",  # a better NLL does not buy a clip
         "not promoted by the accuracy gate: accuracy gate: challenger 7/10 test clips right (70.0%), champion 8"),
        (Standing(8, 10, 0.60), Standing(8, 10, 0.50), True, "all_passed", "tie at 8/10 clips right, lower NLL 0.5000 vs 0.6000"),
        (Standing(8, 10, 0.50), Standing(8, 10, 0.60), False, "no_churn",
         "NLL 0.6000 vs 0.5000 not lower: a reproduction of the champion is not promoted"),
        (Standing(8, 10, 0.5), Standing(8, 10, 0.5 - 1e-9), False, "no_churn", "not lower"),  # float noise is a tie
    ],
)
def test_promotion_rule(champion, challenger, promoted, gate, says):
    decision = promotion_decision(champion, challenger)
    assert (decision.promoted, decision.gate) == (promoted, gate), decision.reason
    assert says in decision.reason
    if not promoted:
        assert decision.reason.endswith("the champion stays")


def test_a_challenger_better_overall_is_refused_when_one_class_loses_recall():
    # 7 right against 6, but every clip of class "a" it gains is paid by class "b".
    champion = standing(6, 8, 0.5, {"a": (2, 4), "b": (4, 4)})
    challenger = standing(7, 8, 0.5, {"a": (4, 4), "b": (3, 4)})
    decision = promotion_decision(champion, challenger)
    assert (decision.promoted, decision.gate) == (False, "recall")
    assert "recall of b dropped from 1.00 to 0.75, more than retrain.max_recall_drop 0.05" in decision.reason
    assert [g.name for g in decision.gates if not g.passed] == ["recall"]
    # A drop of exactly the margin is within it.
    assert promotion_decision(champion, challenger, GatePolicy(max_recall_drop=0.25)).promoted


def test_a_significantly_worse_challenger_is_refused_by_the_paired_test_too():
    champion = standing(10, 10, 0.1, right="1111111111")
    challenger = standing(0, 10, 2.0, right="0000000000")
    decision = promotion_decision(champion, challenger)
    assert (decision.promoted, decision.gate) == (False, "accuracy")
    assert [g.name for g in decision.gates if not g.passed] == ["accuracy", "paired_test"]
    assert decision.mcnemar_worse_p == pytest.approx(1 / 1024)
    assert "accuracy gate and paired_test gate" in decision.reason
    assert "p(challenger worse) = 0.000977, below retrain.significance 0.05" in decision.reason


def test_one_clip_lost_is_refused_by_accuracy_but_not_called_significant():
    decision = promotion_decision(standing(9, 10, 0.1, right="1111111110"),
                                  standing(8, 10, 0.1, right="1111111100"))
    assert (decision.promoted, decision.gate) == (False, "accuracy")
    paired = next(g for g in decision.gates if g.name == "paired_test")
    assert paired.passed and decision.mcnemar_worse_p == pytest.approx(0.5)


def test_the_gate_thresholds_come_from_the_retrain_section():
    from monitor.config import load_config

    assert GatePolicy.from_config(load_config(environ={})) == GatePolicy(max_recall_drop=0.05, significance=0.05)
    cfg = load_config(environ={"TWITCHWATCH_RETRAIN__MAX_RECALL_DROP": "0.25", "TWITCHWATCH_RETRAIN__SIGNIFICANCE": "0.01"})
    assert GatePolicy.from_config(cfg) == GatePolicy(max_recall_drop=0.25, significance=0.01)


@pytest.mark.parametrize(("key", "value"), [("MAX_RECALL_DROP", "1.5"), ("SIGNIFICANCE", "0"), ("SIGNIFICANCE", "1")])
def test_a_gate_threshold_out_of_range_is_a_config_error(cli, key, value):
    code, _, err = cli("config", "show", env={f"TWITCHWATCH_RETRAIN__{key}": value})
    assert code == 2 and f"retrain.{key.lower()}" in err


def test_promotion_rule_refuses_scores_on_different_clip_counts():
    with pytest.raises(ValueError):
        promotion_decision(Standing(8, 10, 0.5), Standing(8, 11, 0.5))


def test_models_tested_on_another_test_set_are_not_comparable():
    data = Dataset(train=[], test=[], classes=list(CLASSES), test_hash="a" * 64, dataset_hash="d")
    check_comparable("m1", {"test_hash": "a" * 64}, data)
    with pytest.raises(DatasetError, match="refusing to compare"):
        check_comparable("m1", {"test_hash": "b" * 64}, data)
    with pytest.raises(DatasetError, match="records no test set hash"):
        check_comparable("m1", {}, data)


# -- champion against challenger, on real model files ---------------------------------------------


def constant_model(tmp_path: Path, bias: list[float], test_hash: str = "h" * 64) -> str:
    """Save a real SqueezeNet whose logits are `bias` whatever it sees; return its id."""
    model = build_model("squeezenet1_1", len(CLASSES))
    with torch.no_grad():
        model.classifier[1].weight.zero_()
        model.classifier[1].bias.copy_(torch.tensor(bias))
    card = {"arch": "squeezenet1_1", "classes": list(CLASSES), "segments": 1, "frames_per_segment": 1,
            "temperature": 1.0, "test_hash": test_hash}
    return save_model(tmp_path, model, card)


def scored_clips() -> Dataset:
    rs = np.random.default_rng(0)
    labels = [CLASSES[0], CLASSES[0], CLASSES[1]]  # a model always saying CLASSES[0] gets 2 of 3
    test = [Clip(f"t{i}", label, f"ch{i}", [toy_frame(0, rs)]) for i, label in enumerate(labels)]
    return Dataset(train=[], test=test, classes=list(CLASSES), test_hash="h" * 64, dataset_hash="d")


SURE_FIRST, UNSURE_FIRST, SURE_SECOND = [2.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 2.0, 0.0]


def quiet(line: str) -> None:
    pass


def test_without_an_active_model_the_challenger_is_promoted(tmp_path):
    challenger = constant_model(tmp_path, SURE_SECOND)
    result = compare_and_promote(tmp_path, scored_clips(), challenger, say=quiet)
    assert result.promoted and "no active model" in result.reason
    assert ModelRegistry(tmp_path).active_id() == challenger


ANY_RECALL = GatePolicy(max_recall_drop=1.0)


@pytest.mark.parametrize(
    ("champion_bias", "challenger_bias", "policy", "promoted", "gate"),
    [
        (SURE_SECOND, SURE_FIRST, ANY_RECALL, True, "all_passed"),  # 2/3 beats 1/3
        # The same 2/3 at the default margin: CLASSES[1]'s recall falls from 1 to 0.
        (SURE_SECOND, SURE_FIRST, GatePolicy(), False, "recall"),
        (SURE_FIRST, SURE_SECOND, ANY_RECALL, False, "accuracy"),  # 1/3 loses to 2/3
        (UNSURE_FIRST, SURE_FIRST, GatePolicy(), True, "all_passed"),  # tie at 2/3, NLL 0.906 < 0.961
        (SURE_FIRST, UNSURE_FIRST, GatePolicy(), False, "no_churn"),  # tie at 2/3, NLL higher
        (SURE_FIRST, SURE_FIRST, GatePolicy(), False, "no_churn"),  # the same model again: no churn
    ],
)
def test_the_challenger_is_promoted_only_through_the_gate(tmp_path, champion_bias, challenger_bias, policy,
                                                          promoted, gate):
    registry = ModelRegistry(tmp_path)
    champion = constant_model(tmp_path, champion_bias)
    registry.activate(champion)
    challenger = constant_model(tmp_path, challenger_bias)
    result = compare_and_promote(tmp_path, scored_clips(), challenger, policy=policy, say=quiet)
    assert (result.promoted, result.decision.gate) == (promoted, gate), result.reason
    assert registry.active_id() == (challenger if promoted else champion)
    assert result.champion_id == champion
    assert result.mcnemar_p is not None and 0 <= result.mcnemar_p <= 1


def test_a_challenger_whose_weights_do_not_load_is_never_promoted(tmp_path):
    registry = ModelRegistry(tmp_path)
    champion = constant_model(tmp_path, SURE_SECOND)
    registry.activate(champion)
    challenger = constant_model(tmp_path, SURE_FIRST)  # would win if it loaded
    weights = tmp_path / "models" / challenger / "weights.pt"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(ModelError, match=f"challenger {challenger} is not promoted.*{champion} stays"):
        compare_and_promote(tmp_path, scored_clips(), challenger, say=quiet)
    assert registry.active_id() == champion


def test_an_active_model_that_no_longer_loads_is_replaced(tmp_path):
    registry = ModelRegistry(tmp_path)
    champion = constant_model(tmp_path, SURE_FIRST)
    registry.activate(champion)
    (tmp_path / "models" / champion / "weights.pt").write_bytes(b"not a checkpoint")
    challenger = constant_model(tmp_path, SURE_SECOND)
    result = compare_and_promote(tmp_path, scored_clips(), challenger, say=quiet)
    assert result.promoted and "does not load" in result.reason
    assert registry.active_id() == challenger


def test_a_champion_tested_on_another_test_set_is_not_compared(tmp_path):
    registry = ModelRegistry(tmp_path)
    champion = constant_model(tmp_path, SURE_SECOND, test_hash="0" * 64)
    registry.activate(champion)
    challenger = constant_model(tmp_path, SURE_FIRST)
    with pytest.raises(DatasetError, match="refusing to compare"):
        compare_and_promote(tmp_path, scored_clips(), challenger, say=quiet)
    assert registry.active_id() == champion


# -- the CLI -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_then_retrain_keeps_the_better_model_active(tmp_path, cli):
    data_dir = tmp_path / "data"
    write_toy_dataset(data_dir)
    cfg = str(toy_config(tmp_path / "c.toml", data_dir))
    registry = ModelRegistry(data_dir)

    code, out, err = cli("train", "--json", "--config", cfg)
    assert code == 0, err[-2000:]
    first = json.loads(out)
    assert INTERFACE_KEYS | {"ece_before", "ece_after"} <= first.keys()
    assert first["promoted"] is True and registry.active_id() == first["model_id"]
    assert first["classes"] == sorted(CLASSES)
    assert first["test_accuracy"] >= 2 / 3 and 0 <= first["ece_after"] <= 1
    model_dir = data_dir / "models" / first["model_id"]
    assert (model_dir / "confusion.png").read_bytes().startswith(b"\x89PNG")
    card = json.loads((model_dir / "card.json").read_text())
    test = card["metrics"]["test"]
    assert sum(map(sum, test["confusion"])) == 3 and set(test["per_class"]) == set(CLASSES)
    assert card["ece_before"] == first["ece_before"] and card["test_hash"]

    # A challenger that cannot learn (learning rate 0) stays at chance: the champion stays.
    code, out, err = cli("retrain", "--json", "--config", cfg, env={"TWITCHWATCH_TRAIN__LEARNING_RATE": "0"})
    assert code == 0, err[-2000:]
    kept = json.loads(out)
    assert INTERFACE_KEYS | {"champion_id", "champion_test_accuracy", "reason"} <= kept.keys()
    assert kept["promoted"] is False and "champion stays" in kept["reason"]
    assert kept["champion_id"] == first["model_id"] and kept["model_id"] != first["model_id"]
    assert kept["champion_test_accuracy"] == pytest.approx(first["test_accuracy"])
    assert kept["test_accuracy"] < kept["champion_test_accuracy"]
    assert registry.active_id() == first["model_id"]
    assert (data_dir / "models" / kept["model_id"] / "card.json").exists()  # registered, just not active

    # Roll back to the untrained model; a properly trained challenger then beats it.
    registry.activate(kept["model_id"])
    code, out, err = cli("retrain", "--json", "--config", cfg)
    assert code == 0, err[-2000:]
    promoted = json.loads(out)
    assert promoted["promoted"] is True and promoted["champion_id"] == kept["model_id"]
    assert promoted["test_accuracy"] > promoted["champion_test_accuracy"]
    assert registry.active_id() == promoted["model_id"]


def test_train_without_a_dataset_exits_1_saying_which_command_to_run(tmp_path):
    # A real process once: exit status and a single stderr line are what a shell sees.
    cfg = str(toy_config(tmp_path / "c.toml", tmp_path / "data"))
    result = run_cli("train", "--json", "--config", cfg)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "run `twitchwatch dataset build` first" in result.stderr
    assert result.stdout == ""


def test_retrain_without_a_dataset_says_which_command_to_run(tmp_path, cli):
    code, out, err = cli("retrain", "--json", "--config", str(toy_config(tmp_path / "c.toml", tmp_path / "data")))
    assert (code, out) == (1, "")
    assert "run `twitchwatch dataset build` first" in err


def test_a_one_class_dataset_is_refused_clearly(tmp_path, cli):
    write_toy_dataset(tmp_path / "data", classes=("21779",))
    code, _, err = cli("train", "--config", str(toy_config(tmp_path / "c.toml", tmp_path / "data")))
    assert code == 1
    assert "1 class(es) (21779)" in err and "at least two categories" in err
    assert not (tmp_path / "data" / "models").exists()


def test_retrain_refuses_a_champion_from_another_test_set_before_training(tmp_path, cli):
    data_dir = tmp_path / "data"
    write_toy_dataset(data_dir)
    champion = constant_model(data_dir, SURE_FIRST, test_hash="0" * 64)
    ModelRegistry(data_dir).activate(champion)
    code, out, err = cli("retrain", "--json", "--config", str(toy_config(tmp_path / "c.toml", data_dir)))
    assert (code, out) == (1, "")
    line = err.strip().splitlines()[-1]
    assert f"the active model {champion} was tested on test set 000000000000" in line
    assert "refusing to compare" in line and "twitchwatch train" in line
    assert [p.name for p in (data_dir / "models").iterdir() if p.is_dir()] == [champion]  # nothing trained
    assert ModelRegistry(data_dir).active_id() == champion


# -- the must-show faults: a challenger that learnt nothing, a retrain killed mid-training -------------


@pytest.fixture(scope="module")
def champion_dir(tmp_path_factory) -> tuple[Path, str]:
    """Return (data dir, model id): the proper toy dataset with a model trained on it, active (3/3 test clips).

    Trained once for the tests below, which each copy the directory: it costs as much as a retrain.
    """
    from monitor.config import load_config
    from trainer.pipeline import train_and_register
    from trainer.train import TrainingSpec

    root = tmp_path_factory.mktemp("champion")
    data_dir = root / "data"
    write_toy_dataset(data_dir)
    cfg = load_config(toy_config(root / "c.toml", data_dir), environ={})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = train_and_register(cfg, TrainingSpec.from_config(cfg, epochs=2), say=quiet)
    finally:
        torch.set_num_threads(threads)
    assert result["test_accuracy"] == 1.0, result  # a champion worth keeping
    return data_dir, result["model_id"]


@pytest.mark.slow
def test_a_challenger_trained_on_shuffled_labels_is_not_promoted_and_says_why(tmp_path, cli, champion_dir):
    # The champion learnt the three scenes; the challenger's dataset has the same frozen test clips
    # (same test hash) but its training clips' labels permuted, so there is nothing to learn.
    proper, champion_id = champion_dir
    shuffled = tmp_path / "shuffled"
    write_toy_dataset(shuffled, shuffle_train_labels=True)
    shutil.copytree(proper / "models", shuffled / "models")
    textfile = tmp_path / "twitchwatch_retrain.prom"

    code, out, err = cli("retrain", "--json", "--epochs", "1", "--config", str(toy_config(tmp_path / "b.toml", shuffled)),
                         env={"TWITCHWATCH_RETRAIN__TEXTFILE": str(textfile)})
    assert code == 0, err[-2000:]
    result = json.loads(out)
    assert INTERFACE_KEYS | {"champion_id", "champion_test_accuracy", "mcnemar_p", "reason", "active_id"} <= result.keys()
    assert result["promoted"] is False and result["champion_id"] == champion_id
    assert result["gate"] == "accuracy" and result["test_accuracy"] < result["champion_test_accuracy"] == 1.0
    refused = [g["name"] for g in result["gates"] if not g["passed"]]
    assert refused[0] == "accuracy" and "recall" in refused
    # Why, in figures: the clips right, and each class whose recall fell, from what to what.
    recall = result["per_class_recall"]
    assert set(recall) == set(CLASSES) and all(r["champion"] == 1.0 and r["support"] == 1 for r in recall.values())
    lost = [c for c, r in recall.items() if r["challenger"] < r["champion"]]
    assert lost and all(f"recall of {c} dropped from 1.00 to 0.00" in result["reason"] for c in lost)
    right = round(result["test_accuracy"] * 3)
    assert f"accuracy gate: challenger {right}/3 test clips right" in result["reason"]
    assert result["reason"].count("the champion stays") == 1
    assert 0.0 <= result["mcnemar_worse_p"] <= 1.0 and (result["max_recall_drop"], result["significance"]) == (0.05, 0.05)
    assert ModelRegistry(shuffled).active_id() == champion_id == result["active_id"]
    # The outcome, for node_exporter: a finished retrain that did not promote.
    values = read_values(textfile)
    assert values["promoted"] == 0.0 and values["last_attempt_failed"] == 0.0
    assert values["test_accuracy"] == pytest.approx(result["test_accuracy"])
    assert values["champion_test_accuracy"] == pytest.approx(1.0)
    assert values["last_success_timestamp_seconds"] == values["last_attempt_timestamp_seconds"] > 0


def model_files(data_dir: Path, model_id: str) -> dict[str, bytes]:
    directory = data_dir / "models" / model_id
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.slow
def test_sigkill_during_retrain_leaves_the_registry_and_the_active_model_intact(tmp_path, cli, champion_dir):
    data_dir = tmp_path / "data"
    shutil.copytree(champion_dir[0], data_dir)
    champion = champion_dir[1]
    cfg = str(toy_config(tmp_path / "c.toml", data_dir))
    registry = ModelRegistry(data_dir)
    listed = json.loads(cli("models", "--json", "--config", cfg)[1])
    pointer = (data_dir / "models" / "ACTIVE").read_bytes()
    files = model_files(data_dir, champion)

    # A real process, killed once the trainer logs a step of its first epoch (stderr, unbuffered).
    proc, log_path = start_process(["-m", "monitor", "retrain", "--json", "--epochs", "2", "--config", cfg],
                                   tmp_path, tmp_path / "retrain.log", PYTHONUNBUFFERED="1")
    try:
        wait_for(lambda: "epoch 1/2 step" in log_path.read_text() or proc.poll() is not None, timeout=300,
                 what="the retrain to start training")
        assert proc.poll() is None, log_path.read_text()[-3000:]
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(30) == -signal.SIGKILL
    finally:
        stop_process(proc)

    assert json.loads(cli("models", "--json", "--config", cfg)[1]) == listed
    assert (data_dir / "models" / "ACTIVE").read_bytes() == pointer
    assert model_files(data_dir, champion) == files
    assert registry.load_active().model_id == champion
    # Whatever the killed run left (a challenger directory without card.json) is neither listed nor activatable.
    for leftover in {p.name for p in (data_dir / "models").iterdir() if p.is_dir()} - {champion}:
        assert not (data_dir / "models" / leftover / "card.json").exists()
        with pytest.raises(ModelError):
            registry.activate(leftover)
    assert registry.active_id() == champion

    # The next retrain runs to completion against the same champion.
    code, out, err = cli("retrain", "--json", "--epochs", "1", "--config", cfg)
    assert code == 0, err[-2000:]
    after = json.loads(out)
    assert after["champion_id"] == champion and after["gate"] in GATE_NAMES
    cards = json.loads(cli("models", "--json", "--config", cfg)[1])
    assert {c["model_id"] for c in cards} == {c["model_id"] for c in listed} | {after["model_id"]}
    assert registry.active_id() == (after["model_id"] if after["promoted"] else champion)
