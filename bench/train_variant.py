"""Train one variant of the training settings on a built dataset and score it on its frozen test clips.

    python bench/report_experiment.py --workdir /tmp/twreport --dataset-only     # builds the dataset
    OMP_NUM_THREADS=1 python bench/train_variant.py --data /tmp/twreport/data --tag m1 --train-n 1
    OMP_NUM_THREADS=1 python bench/train_variant.py --data /tmp/twreport/data --tag old \
        --train-n 3 --epochs 12 --patience 3

For comparing training settings side by side (two variants at one thread
each fill the 2 cores evenly): the same validation split and seed as
`twitchwatch train`, nothing registered. Prints one JSON line (test clip and
frame accuracy, best epoch, seconds, which clips went wrong) and writes the
training log to <out>/<tag>.log.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import torch

from monitor.config import DEFAULT_FRAMES_PER_SEGMENT, DEFAULT_SEGMENTS
from trainer.augment import ERASE_PROBABILITY
from trainer.dataset import load_dataset
from trainer.evaluate import evaluate_model
from trainer.pipeline import VAL_FRACTION, split_validation
from trainer.train import PATIENCE, TrainingSpec, train_classifier


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True, help="data_dir holding dataset/ (from `dataset build`)")
    parser.add_argument("--tag", required=True)
    parser.add_argument("--out", default="/tmp/twitchwatch-variants")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--segments", type=int, default=DEFAULT_SEGMENTS, help="K")
    parser.add_argument("--frames-per-segment", type=int, default=DEFAULT_FRAMES_PER_SEGMENT, help="n, at inference")
    parser.add_argument("--train-n", type=int, default=1, help="frames per segment in training")
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--patience", type=int, default=PATIENCE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=None, help="time budget")
    parser.add_argument("--erase", type=float, default=ERASE_PROBABILITY, help="random erasing probability")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_dataset(args.data)
    train, val = split_validation(data.train, VAL_FRACTION, args.seed)
    with open(out / f"{args.tag}.log", "w", encoding="utf-8") as log:
        def say(line: str) -> None:
            print(line, file=log, flush=True)

        say(json.dumps(vars(args)))
        started = time.monotonic()
        spec = TrainingSpec(
            arch="squeezenet1_1", pretrained="none", segments=args.segments,
            frames_per_segment=args.frames_per_segment, train_frames_per_segment=args.train_n,
            epochs=args.epochs, batch_size=args.batch, learning_rate=args.lr, seed=args.seed,
            patience=args.patience, erase_probability=args.erase, max_seconds=args.minutes * 60 if args.minutes else None,
        )
        result = train_classifier(train, val, data.classes, spec, log=say)
        seconds = time.monotonic() - started
        test = evaluate_model(result.classifier(), data.test)
        wrong = Counter(f"{o.label}->{o.predicted}" for o in test.outcomes if o.label != o.predicted)
        summary = {
            "tag": args.tag, "test_clip_accuracy": test.clip_accuracy, "test_frame_accuracy": test.frame_accuracy,
            "best_epoch": result.best_epoch, "epochs_run": len(result.history), "train_seconds": round(seconds),
            "val_accuracy": result.metrics.get("val_accuracy"), "train_accuracy": result.metrics["train_accuracy"],
            "clips": {"train": len(train), "validation": len(val), "test": len(data.test)}, "wrong": dict(wrong),
        }
        say(json.dumps(summary))
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
