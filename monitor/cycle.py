"""One poll cycle: list the top streams of every watched category and check them.

    rt = Runtime(cfg)
    summary = run_cycle(rt)          # what `twitchwatch run --once --json` prints
    rt.close()

`run_cycle` hands each stream to `check` (monitor.check.check_stream unless
a test gives its own) with the runtime's `check_context`.

Captures are I/O bound, so `monitor.capture_workers` checks run at once;
decoding and inference are CPU bound, so they take a slot of `cpu_slot()`,
bounded to the cores, whatever the number of capture threads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import torch

from monitor.check import CheckResult, check_stream
from monitor.check_context import CheckContext
from monitor.classify import Classifier
from monitor.config import Config
from monitor.drift import drift_report
from monitor.errors import HelixError, ModelError, TwitchwatchError
from monitor.helix import HelixClient, Stream
from monitor.memory import cap_malloc_arenas, release_memory
from monitor.metrics import Metrics
from monitor.model_registry import ModelRegistry
from monitor.retain import Retainer
from monitor.store import FlagEvent, Store
from monitor.verdict import Outcome

log = logging.getLogger(__name__)

CheckFn = Callable[[CheckContext, Stream, Classifier], CheckResult]


class Runtime:
    """The long-lived parts of one process: store, Helix client, model, pools."""

    def __init__(self, cfg: Config, metrics: Metrics | None = None):
        self.cfg = cfg
        self.metrics = metrics or Metrics()
        self.metrics.watch_categories(cfg.categories.watch)
        self.store = Store(cfg.storage.database_url)
        self.store.ensure_current()
        self.helix = HelixClient(cfg.twitch, on_request=self.metrics.helix_request)
        self.registry = ModelRegistry(cfg.data_path)
        self.retainer = Retainer(
            cfg.data_path,
            enabled=cfg.retain.enabled,
            max_bytes=cfg.retain.max_bytes,
            review_max_bytes=cfg.retain.review_max_bytes,
            min_confidence=cfg.retain.min_confidence,
            category_share=cfg.retain.category_share,
            on_error=self.metrics.retention_failed,
        )
        cap_malloc_arenas()  # before the check threads allocate: see monitor.memory
        self._cpu = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))
        # The slots already fill the cores: one torch thread each, or idle OpenMP threads spin on a
        # busy core (bench/check.py: int8 inference takes several times the CPU with 2 threads per slot).
        torch.set_num_threads(1)
        self._classifier: Classifier | None = None
        self._classifier_lock = threading.Lock()  # a worker's checks ask for it from several threads
        self._bad_model: str | None = None
        self._category_names: dict[str, str] = {}
        self._notifier = None
        webhook_url = cfg.notify.webhook_url.get_secret_value()
        if webhook_url:
            from monitor.notify import Notifier

            self._notifier = Notifier(webhook_url, self.metrics)
        self.check_context = CheckContext(
            monitor=cfg.monitor, stream_url=cfg.twitch.stream_url, chatting_id=cfg.categories.chatting,
            store=self.store, retainer=self.retainer, metrics=self.metrics, cpu_slot=self.cpu_slot,
            notify_flag=self.notify_flag,
        )

    @contextlib.contextmanager
    def cpu_slot(self) -> Iterator[None]:
        """Hold one of the core-bounded slots for decoding and inference."""
        with self._cpu:
            yield

    def classifier(self) -> Classifier:
        """Return the active model, re-read when the registry's pointer moved."""
        with self._classifier_lock:
            active = self.registry.active_id()
            if self._classifier is None or self._classifier.model_id != active:
                try:
                    loaded = self.registry.load_active(self.cfg.model.inference)
                except ModelError as exc:
                    if self._classifier is None:
                        raise
                    # A bad model made active by mistake: the last good one goes on, said once per model.
                    if active != self._bad_model:
                        self._bad_model = active
                        self.metrics.model_load_failed()
                        log.error("model %s cannot be loaded, keeping model %s: %s",
                                  active, self._classifier.model_id, exc)
                    return self._classifier
                self._classifier = loaded
                self.metrics.set_model(self._classifier.card)
                log.info("model %s active (%s)", self._classifier.model_id, ", ".join(self._classifier.classes))
            return self._classifier

    def category_names(self) -> dict[str, str]:
        """Return {id: name} of the watched categories, asked of Helix once."""
        if not self._category_names:
            watch = list(self.cfg.categories.watch)
            self._category_names = self.helix.game_names(watch)
            missing = [gid for gid in watch if gid not in self._category_names]
            if missing:
                log.warning("watched categories unknown to Twitch: %s", ", ".join(missing))
            self.store.upsert_categories(self._category_names)
            self.metrics.set_category_names(self._category_names)
        return self._category_names

    def notify_flag(self, event: FlagEvent | None) -> None:
        """Send a flag's opening or closing to the webhook, if one is configured."""
        if self._notifier is not None and event is not None and event.action in ("open", "close"):
            self._notifier.send({"action": event.action, "flag": event.flag})

    def close(self) -> None:
        """Stop the webhook sender and close the database connections."""
        if self._notifier is not None:
            self._notifier.close()
        self.store.dispose()


@dataclass
class CycleSummary:
    """What one cycle did, as `run --once --json` prints it."""

    checks: int = 0
    completed: int = 0
    verdicts: dict[str, int] = field(default_factory=lambda: {o.value: 0 for o in Outcome})
    flags_opened: int = 0
    flags_closed: int = 0
    wall_seconds: float = 0.0
    cpu_seconds: float = 0.0
    bytes_downloaded: int = 0
    categories_failed: list[str] = field(default_factory=list)
    results: list[CheckResult] = field(default_factory=list, repr=False)

    def to_json(self) -> dict:
        return {
            "checks": self.checks,
            "completed": self.completed,
            "verdicts": dict(self.verdicts),
            "flags_opened": self.flags_opened,
            "flags_closed": self.flags_closed,
            "wall_seconds": round(self.wall_seconds, 3),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "bytes_downloaded": self.bytes_downloaded,
            "categories_failed": list(self.categories_failed),
        }


def run_cycle(rt: Runtime, stop: threading.Event | None = None, *, check: CheckFn = check_stream) -> CycleSummary:
    """Check the top streams of every watched category once; stop early when `stop` is set."""
    stop = stop or threading.Event()
    wall0, cpu0 = time.monotonic(), time.process_time()
    summary = CycleSummary()
    rt.metrics.set_scheduler_active(True)  # the single process schedules its own cycles
    classifier = rt.classifier()
    names = rt.category_names()
    streams = list_streams(rt, summary, names)
    summary.checks = len(streams)
    with ThreadPoolExecutor(rt.cfg.monitor.capture_workers, thread_name_prefix="check") as pool:
        futures: list[Future[CheckResult]] = [
            pool.submit(_guarded_check, check, rt.check_context, s, classifier, stop) for s in streams
        ]
        while futures:
            done, pending = wait(futures, timeout=0.5)
            for future in done:
                _tally(summary, future.result())
            futures = list(pending)
            if stop.is_set():
                # Checks not started yet are abandoned; running ones finish and commit.
                for future in futures:
                    future.cancel()
                futures = [f for f in futures if not f.cancelled()]
    refresh_open_flags(rt)
    refresh_drift(rt)
    release_memory()
    summary.wall_seconds = time.monotonic() - wall0
    summary.cpu_seconds = time.process_time() - cpu0
    rt.metrics.cycle_done(summary.wall_seconds, ok=not summary.categories_failed)
    log.info(
        "cycle: %d checks, %d completed, %s, %d flags opened, %d closed, %.1fs",
        summary.checks, summary.completed,
        " ".join(f"{k}={v}" for k, v in summary.verdicts.items() if v),
        summary.flags_opened, summary.flags_closed, summary.wall_seconds,
    )
    return summary


def list_streams(rt: Runtime, summary: CycleSummary, names: dict[str, str]) -> list[Stream]:
    """List each watched category's top streams, closing flags of channels that left.

    Counts into summary the categories that failed and the flags closed; the
    scheduler role (monitor.scheduler) lists the same way, then enqueues.
    """
    seen: set[str] = set()
    streams: list[Stream] = []
    for game_id in rt.cfg.categories.watch:
        try:
            listed = rt.helix.top_streams(game_id, rt.cfg.monitor.streams_per_category)
        except HelixError as exc:
            log.error("listing category %s (%s) failed: %s", game_id, names.get(game_id, "?"), exc)
            summary.categories_failed.append(game_id)
            continue
        for event in rt.store.close_missing(game_id, {s.user_id for s in listed}):
            summary.flags_closed += 1
            rt.metrics.flag_event(event.action, game_id, event.reason)
            rt.notify_flag(event)
        for stream in listed:
            if stream.user_id not in seen:
                seen.add(stream.user_id)
                streams.append(stream)
    return streams


def _guarded_check(
    check: CheckFn, ctx: CheckContext, stream: Stream, classifier: Classifier, stop: threading.Event
) -> CheckResult:
    if stop.is_set():
        return CheckResult.of(stream, Outcome.ERROR, error="abandoned: stopping")
    try:
        return check(ctx, stream, classifier)
    except TwitchwatchError as exc:  # e.g. the database still down after the store's retry: one line
        log.error("check %s failed: %s", stream.user_login, exc)
        return CheckResult.of(stream, Outcome.ERROR, error=f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # one broken check must not end the cycle
        log.exception("check %s failed unexpectedly", stream.user_login)
        return CheckResult.of(stream, Outcome.ERROR, error=f"{type(exc).__name__}: {exc}")


def _tally(summary: CycleSummary, result: CheckResult) -> None:
    summary.results.append(result)
    summary.verdicts[result.outcome] = summary.verdicts.get(result.outcome, 0) + 1
    if Outcome.parse(result.outcome).completed:
        summary.completed += 1
    summary.bytes_downloaded += result.record.bytes_downloaded
    if result.flag_event is not None:
        if result.flag_event.action == "open":
            summary.flags_opened += 1
        elif result.flag_event.action == "close":
            summary.flags_closed += 1


def refresh_drift(rt: Runtime) -> None:
    """Export the active model's drift figures (monitor.drift); a failure costs the gauges, not the cycle."""
    try:
        report = drift_report(rt.store, rt.registry)
        rt.metrics.set_drift(report.to_json(), rt.cfg.categories.watch)
    except TwitchwatchError as exc:
        log.warning("drift figures not refreshed: %s", exc)
    except Exception:  # a secondary figure: its bug must not fail the cycle that checked the streams
        log.exception("drift figures not refreshed")


def refresh_open_flags(rt: Runtime) -> None:
    """Export the open flags per declared category, and the flags humans confirmed and rejected."""
    counts = Counter(flag["declared_game_id"] for flag in rt.store.flags())
    rt.metrics.set_open_flags(counts)
    # From the database: a review given by `twitchwatch review` in another process shows here too.
    rt.metrics.set_reviewed_flags(rt.store.reviewed_flag_counts())
