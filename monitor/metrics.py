"""Export what the daemon does as Prometheus metrics, on a private registry.

    metrics = Metrics()
    metrics.check_done("509658", "mismatch")
    metrics.observe_stage("capture", 11.8)
    server = metrics.serve("127.0.0.1", 9464)     # GET /metrics
    server.shutdown()

Names follow Prometheus conventions: the `twitchwatch_` prefix, base units
(seconds, bytes), `_total` on counters. Labels are bounded (category,
outcome, endpoint, status, stage, kind, action, reason), never a channel:
per-channel detail lives in the database, which Grafana queries directly.
Each Metrics object owns its CollectorRegistry, so tests and several
runtimes in one process never share or collide on the global one.

Every labelled counter whose label values are known starts at 0 for each of
them (outcomes, close reasons, endpoints, results, and the watched categories
once `watch_categories` names them), so that `increase()` and `rate()` see
the first failure instead of a series that appears with it.
`twitchwatch_category_info{category,name}` maps category ids to names for
dashboards. The exporter is prometheus-client's own `start_http_server`.

The drift gauges (`twitchwatch_drift_*`, monitor.drift) are set after every
cycle from the database: the last day's checks of the active model per
declared category. Their labels stay bounded: `category` is one of the
watched categories, `predicted` one of the active model's classes; a
series whose category or class is no longer there is removed.
"""

from __future__ import annotations

import platform
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from monitor import __version__
from monitor.verdict import CLOSE_REASONS, Outcome

DOWNLOAD_KINDS = ("video", "thumbnail")
FLAG_ACTIONS = ("open", "close")
ENQUEUE_RESULTS = ("queued", "already_queued", "running")  # monitor.checkqueue.EnqueueReport
QUEUE_STATUSES = ("todo", "doing")
CYCLE_RESULTS = ("ok", "failed")
WEBHOOK_RESULTS = ("ok", "failed", "dropped")
RETAIN_AREAS = ("live", "review")
REVIEW_VERDICTS = ("confirmed", "rejected")  # monitor.store.models.CONFIRMED, REJECTED
# What the daemon asks Helix (monitor.helix), and the answers that alerts and the client tell apart:
# 0 no answer, 200, 401 a token to mint again, 429 the rate limit, 5xx Twitch's trouble.
HELIX_ENDPOINTS = ("token", "validate", "streams", "users", "games")
HELIX_STATUSES = ("0", "200", "401", "429", "500", "503")

# Buckets per stage, around what each stage costs: a capture is about
# monitor.capture_seconds (12 s) and is capped by capture_timeout_seconds (45 s);
# decoding K*n frames of a few seconds of 360p takes tenths of a second to
# seconds; SqueezeNet on a batch of 18 frames on a CPU core is tens of ms
# to a second or two on a loaded machine.
STAGE_BUCKETS: dict[str, tuple[float, ...]] = {
    "capture": (1, 2, 5, 8, 10, 12, 15, 20, 30, 45, 60, 90),
    "decode": (0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20),
    "inference": (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10),
}
# A cycle checks up to watched categories x top N streams with a few capture
# workers: seconds on a quiet scenario, minutes in production (interval 300 s).
CYCLE_BUCKETS = (1, 5, 10, 30, 60, 120, 180, 240, 300, 450, 600, 900, 1800)


class Metrics:
    """Hold every twitchwatch metric on one private CollectorRegistry."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._lock = threading.Lock()
        self._open_flag_categories: set[str] = set()
        self._activity = time.monotonic()

        Info("twitchwatch_build", "Version of twitchwatch and of Python running it.", registry=r).info(
            {"version": __version__, "python_version": platform.python_version()}
        )
        # Process start time, CPU and memory: the stale-cycle alert needs the
        # start time before the first cycle has finished.
        ProcessCollector(registry=r)

        self._checks = Counter(
            "twitchwatch_checks", "Checks finished, by watched category and outcome.",
            ["category", "outcome"], registry=r,
        )
        self._stages = {
            stage: Histogram(
                f"twitchwatch_{stage}_duration_seconds", f"Time spent in the {stage} stage of one check.",
                buckets=buckets, registry=r,
            )
            for stage, buckets in STAGE_BUCKETS.items()
        }
        self._helix_requests = Counter(
            "twitchwatch_helix_requests", "Helix and OAuth requests by endpoint and HTTP status (0: no answer).",
            ["endpoint", "status"], registry=r,
        )
        self._helix_remaining = Gauge(
            "twitchwatch_helix_ratelimit_remaining", "Points left in the Helix rate-limit bucket (last answer).",
            registry=r,
        )
        self._tokens_minted = Counter(
            "twitchwatch_helix_tokens_minted", "App access tokens minted (a 200 from /oauth2/token): a handful "
            "a month is normal; one per request means renewal is broken.", registry=r,
        )
        self._model_load_errors = Counter(
            "twitchwatch_model_load_errors", "Times the active model could not be loaded and the last good "
            "one was kept.", registry=r,
        )
        self._bytes = Counter(
            "twitchwatch_downloaded_bytes", "Bytes downloaded, by kind (video, thumbnail).", ["kind"], registry=r,
        )
        self._flag_events = Counter(
            "twitchwatch_flag_events", "Flags opened and closed, by declared category and close reason.",
            ["action", "category", "reason"], registry=r,
        )
        self._open_flags = Gauge(
            "twitchwatch_open_flags", "Open flags by declared category.", ["category"], registry=r,
        )
        self._cycle_seconds = Histogram(
            "twitchwatch_cycle_duration_seconds", "Wall time of one poll cycle.", buckets=CYCLE_BUCKETS, registry=r,
        )
        self._cycles = Counter(
            "twitchwatch_cycles", "Poll cycles finished, by result (ok, failed).", ["result"], registry=r,
        )
        self._last_success = Gauge(
            "twitchwatch_last_successful_cycle_timestamp_seconds",
            "Unix time at which the last successful cycle ended (0: none yet).", registry=r,
        )
        self._interval = Gauge(
            "twitchwatch_poll_interval_seconds", "Configured time between poll cycles.", registry=r,
        )
        self._model = Info("twitchwatch_model", "The active model: id, architecture, classes.", registry=r)
        self._model_accuracy = Gauge(
            "twitchwatch_model_test_accuracy_ratio", "Clip-level test accuracy of the active model (0 to 1).",
            registry=r,
        )
        self._model_trained = Gauge(
            "twitchwatch_model_trained_timestamp_seconds", "Unix time at which the active model was trained.",
            registry=r,
        )
        self._job_errors = Counter(
            "twitchwatch_job_errors", "Scheduled cycles that raised instead of finishing.", registry=r,
        )
        self._retention_errors = Counter(
            "twitchwatch_retention_errors", "Captured frames that could not be kept, by area (live, review).",
            ["area"], registry=r,
        )
        # Scale-out (`run --role scheduler|worker`, monitor/scheduler.py and monitor/worker.py).
        self._scheduler_active = Gauge(
            "twitchwatch_scheduler_active",
            "1 while this process schedules the poll cycles (the single daemon, or the scheduler holding "
            "the lock); 0 in a worker or a standby scheduler.", registry=r,
        )
        self._enqueues = Counter(
            "twitchwatch_check_enqueues", "Checks a cycle offered the queue, by result (queued, "
            "already_queued: a job of the channel still waits, running: one is being checked).",
            ["result"], registry=r,
        )
        self._queue = Gauge(
            "twitchwatch_check_queue_jobs", "Checks in the queue by status (todo: waiting, doing: running), "
            "as the active scheduler last counted them.", ["status"], registry=r,
        )
        self._stalled = Counter(
            "twitchwatch_stalled_checks", "Running checks the active scheduler put back in the queue because "
            "their worker fell silent.", registry=r,
        )
        self._webhook = Counter(
            "twitchwatch_webhook_deliveries", "Flag webhook deliveries by result (ok, failed, dropped).",
            ["result"], registry=r,
        )
        self._category = Info(
            "twitchwatch_category", "Name of each watched category (its Twitch name, else its id).", ["category"],
            registry=r,
        )
        # Drift (monitor.drift): the last day's checks of the active model against its test-set reference.
        self._drift_share = Gauge(
            "twitchwatch_drift_predicted_share", "Share of the last day's checks declared in a category whose "
            "top class is `predicted` (the active model's classes).", ["category", "predicted"], registry=r,
        )
        self._drift_reference_share = Gauge(
            "twitchwatch_drift_reference_share", "The same share on the active model's test clips of that "
            "category (its card's drift reference).", ["category", "predicted"], registry=r,
        )
        self._drift_confidence = Gauge(
            "twitchwatch_drift_mean_confidence", "Mean top-class probability of the last day's checks declared "
            "in a category.", ["category"], registry=r,
        )
        self._drift_reference_confidence = Gauge(
            "twitchwatch_drift_reference_confidence", "Mean top-class probability of the active model's test "
            "clips of a category.", ["category"], registry=r,
        )
        self._drift_tv = Gauge(
            "twitchwatch_drift_tv_distance", "Total-variation distance between the last day's predicted-class "
            "shares of a declared category and its test-set reference (0 to 1; 0.25 and up: moved).",
            ["category"], registry=r,
        )
        self._drift_checks = Gauge(
            "twitchwatch_drift_checks", "Checks of the active model in the last day, by declared category.",
            ["category"], registry=r,
        )
        self._drift_moved = Gauge(
            "twitchwatch_drift_moved", "1 where a declared category's figures moved past the drift thresholds "
            "(`twitchwatch drift` names which).", ["category"], registry=r,
        )
        self._drift_series: dict[Gauge, set[tuple[str, ...]]] = {}
        self._category_names: dict[str, str] = {}
        self._reviewed = ReviewedFlags()
        r.register(self._reviewed)
        for endpoint in HELIX_ENDPOINTS:
            for status in HELIX_STATUSES:
                self._helix_requests.labels(endpoint=endpoint, status=status)
        for kind in DOWNLOAD_KINDS:
            self._bytes.labels(kind=kind)
        for result in CYCLE_RESULTS:
            self._cycles.labels(result=result)
        for area in RETAIN_AREAS:
            self._retention_errors.labels(area=area)
        for result in WEBHOOK_RESULTS:
            self._webhook.labels(result=result)

    # -- what is known before anything happens ----------------------------------

    def watch_categories(self, categories: Iterable[str]) -> None:
        """Start the per-category series at 0 for each watched category, named by its id until renamed."""
        with self._lock:
            for category in categories:
                for outcome in Outcome:
                    self._checks.labels(category=category, outcome=outcome.value)
                self._flag_events.labels(action="open", category=category, reason="")
                for reason in CLOSE_REASONS:
                    self._flag_events.labels(action="close", category=category, reason=reason)
                if category not in self._open_flag_categories:
                    self._open_flags.labels(category=category).set(0)
                    self._open_flag_categories.add(category)
                if category not in self._category_names:
                    self._set_category_name(category, category)
        self._reviewed.watch(categories)

    def set_category_names(self, names: Mapping[str, str]) -> None:
        """Export the Twitch names of categories, as `twitchwatch_category_info{category,name}`."""
        with self._lock:
            for category, name in names.items():
                self._set_category_name(category, name)

    def _set_category_name(self, category: str, name: str) -> None:
        if self._category_names.get(category) != name:
            self._category.labels(category=category).info({"name": name})
            self._category_names[category] = name

    # -- what a check and a cycle report ------------------------------------

    def check_done(self, category: str, outcome: str) -> None:
        """Count one finished check of a stream declared in `category`."""
        outcome = Outcome.parse(outcome)
        self._checks.labels(category=category, outcome=outcome.value).inc()
        self._touch()

    def observe_stage(self, stage: str, seconds: float) -> None:
        """Record the duration of one stage (capture, decode, inference) of a check."""
        try:
            histogram = self._stages[stage]
        except KeyError:
            raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGE_BUCKETS)}") from None
        histogram.observe(seconds)
        self._touch()

    def helix_request(self, endpoint: str, status: int, ratelimit_remaining: int | None) -> None:
        """Count one Helix request and keep the rate-limit points it reported."""
        self._helix_requests.labels(endpoint=endpoint, status=str(status)).inc()
        if endpoint == "token" and status == 200:
            self._tokens_minted.inc()
        self._touch()
        if ratelimit_remaining is not None:
            self._helix_remaining.set(ratelimit_remaining)

    def bytes_downloaded(self, kind: str, n: int) -> None:
        """Add `n` downloaded bytes of one kind (video or thumbnail)."""
        if kind not in DOWNLOAD_KINDS:
            raise ValueError(f"unknown download kind {kind!r}; expected one of {', '.join(DOWNLOAD_KINDS)}")
        self._bytes.labels(kind=kind).inc(n)

    def flag_event(self, action: str, category: str, reason: str = "") -> None:
        """Count a flag opened or closed in a declared category; "extend" (one more check) is no event."""
        if action == "extend":
            return
        if action not in FLAG_ACTIONS:
            raise ValueError(f"unknown flag action {action!r}; expected open, close or extend")
        self._flag_events.labels(action=action, category=category, reason=reason).inc()

    def set_open_flags(self, counts: Mapping[str, int]) -> None:
        """Set open flags per declared category; categories seen before and absent now go to 0."""
        with self._lock:
            for category in self._open_flag_categories - set(counts):
                self._open_flags.labels(category=category).set(0)
            for category, n in counts.items():
                self._open_flags.labels(category=category).set(n)
            self._open_flag_categories |= set(counts)

    def set_reviewed_flags(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Export the flags humans confirmed and rejected, {(verdict, declared category): n}, read from the database."""
        self._reviewed.set(counts)

    def cycle_done(self, seconds: float, ok: bool) -> None:
        """Record one cycle's duration; a successful one moves the last-success timestamp."""
        self._cycle_seconds.observe(seconds)
        self._cycles.labels(result="ok" if ok else "failed").inc()
        if ok:
            self._last_success.set(time.time())

    def set_interval(self, seconds: float) -> None:
        """Export the poll interval, so alerts scale with the configuration."""
        self._interval.set(seconds)

    def set_model(self, card: Mapping[str, Any]) -> None:
        """Export the active model's card: id, arch, classes, test accuracy, training time."""
        classes = card.get("classes") or ()
        self._model.info({
            "id": str(card.get("id") or card.get("model_id") or ""),
            "arch": str(card.get("arch") or ""),
            "classes": ",".join(str(c) for c in classes),
        })
        accuracy = card.get("test_accuracy")
        if isinstance(accuracy, (int, float)):
            self._model_accuracy.set(accuracy)
        trained = _timestamp(card.get("created_at"))
        if trained is not None:
            self._model_trained.set(trained)

    def set_drift(self, report: Mapping[str, Any], watched: Iterable[str]) -> None:
        """Export a drift report (monitor.drift's `to_json()`) for the watched categories; drop stale series."""
        watched = set(watched)
        classes = set(report.get("classes") or ())
        values: dict[Gauge, dict[tuple[str, ...], float]] = {g: {} for g in (
            self._drift_share, self._drift_reference_share, self._drift_confidence,
            self._drift_reference_confidence, self._drift_tv, self._drift_checks, self._drift_moved)}
        for c in report.get("categories") or ():
            category = c["category"]
            if category not in watched:  # bounded: only the watched set
                continue
            values[self._drift_checks][(category,)] = c["checks"]
            values[self._drift_confidence][(category,)] = c["mean_confidence"]
            values[self._drift_moved][(category,)] = 1.0 if c.get("moved") else 0.0
            for predicted, share in c["predicted"].items():
                if predicted in classes:
                    values[self._drift_share][(category, predicted)] = share
            reference = c.get("reference")
            if reference:
                values[self._drift_reference_confidence][(category,)] = reference["mean_confidence"]
                for predicted, share in reference.get("predicted", {}).items():
                    if predicted in classes:
                        values[self._drift_reference_share][(category, predicted)] = share
            if c.get("tv_distance") is not None:
                values[self._drift_tv][(category,)] = c["tv_distance"]
        with self._lock:
            for gauge, series in values.items():
                for labels in self._drift_series.get(gauge, set()) - series.keys():
                    gauge.remove(*labels)
                for labels, value in series.items():
                    gauge.labels(*labels).set(value)
                self._drift_series[gauge] = set(series)

    def model_load_failed(self) -> None:
        """Count one failed load of the active model (the last good one stays in use)."""
        self._model_load_errors.inc()

    def job_error(self) -> None:
        """Count one scheduled cycle that raised."""
        self._job_errors.inc()

    def retention_failed(self, area: str) -> None:
        """Count one clip whose frames could not be kept (the check itself went on)."""
        self._retention_errors.labels(area=area).inc()

    def webhook_delivery(self, result: str) -> None:
        """Count one flag webhook delivery: ok, failed (after retries) or dropped (queue full)."""
        if result not in ("ok", "failed", "dropped"):
            raise ValueError(f"unknown webhook result {result!r}")
        self._webhook.labels(result=result).inc()

    def set_scheduler_active(self, active: bool) -> None:
        """Export whether this process schedules the poll cycles now."""
        self._scheduler_active.set(1 if active else 0)

    def checks_enqueued(self, counts: Mapping[str, int]) -> None:
        """Count one cycle's enqueue results: {"queued": n, "already_queued": n, "running": n}."""
        for result, n in counts.items():
            if result not in ENQUEUE_RESULTS:
                raise ValueError(f"unknown enqueue result {result!r}; expected one of {', '.join(ENQUEUE_RESULTS)}")
            self._enqueues.labels(result=result).inc(n)
        self._touch()

    def set_check_queue(self, counts: Mapping[str, int]) -> None:
        """Export the checks waiting and running: {"todo": n, "doing": n}."""
        for status in QUEUE_STATUSES:
            self._queue.labels(status=status).set(counts.get(status, 0))

    def stalled_checks(self, n: int) -> None:
        """Count checks handed back to the queue from silent workers."""
        self._stalled.inc(n)

    def checks_recorded(self) -> int:
        """Return how many checks were counted since this object was made, all labels together."""
        return int(sum(
            sample.value
            for family in self._checks.collect()
            for sample in family.samples
            if sample.name == "twitchwatch_checks_total"
        ))

    def last_activity(self) -> float:
        """Return the time.monotonic() of the last check, stage or Helix answer recorded."""
        return self._activity

    def _touch(self) -> None:
        # What the systemd watchdog reads to tell a slow cycle from a hung one.
        self._activity = time.monotonic()

    # -- exposition ----------------------------------------------------------

    def serve(self, addr: str, port: int) -> MetricsServer:
        """Serve /metrics on addr:port in a daemon thread; port 0 picks a free one."""
        return MetricsServer(self.registry, addr, port)


class ReviewedFlags(Collector):
    """`twitchwatch_flags_confirmed_total` and `twitchwatch_flags_rejected_total`, by declared category.

    Counters of verdicts `twitchwatch review` stored, whichever process gave
    them: the values are the database's counts (monitor.store's reviews
    rows), set each cycle, never counted up here. A verdict is never deleted,
    so they only grow, as counters must.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}

    def watch(self, categories: Iterable[str]) -> None:
        """Start both series of each category at 0."""
        with self._lock:
            for category in categories:
                for verdict in REVIEW_VERDICTS:
                    self._counts.setdefault((verdict, category), 0)

    def set(self, counts: Mapping[tuple[str, str], int]) -> None:
        """Take the database's counts; a category it no longer lists keeps its last value."""
        with self._lock:
            for (verdict, category), n in counts.items():
                if verdict not in REVIEW_VERDICTS:
                    raise ValueError(f"unknown review verdict {verdict!r}; expected confirmed or rejected")
                self._counts[(verdict, category)] = max(int(n), self._counts.get((verdict, category), 0))

    def collect(self) -> Iterable[CounterMetricFamily]:
        with self._lock:
            counts = dict(self._counts)
        helps = {
            "confirmed": "Flags a human confirmed (`twitchwatch review`), by declared category: true positives.",
            "rejected": "Flags a human rejected (closed, reason rejected), by declared category: false positives.",
        }
        for verdict in REVIEW_VERDICTS:
            family = CounterMetricFamily(f"twitchwatch_flags_{verdict}", helps[verdict], labels=["category"])
            for (v, category), n in sorted(counts.items()):
                if v == verdict:
                    family.add_metric([category], n)
            yield family


class MetricsServer:
    """The exporter (prometheus-client's start_http_server): `port` is the bound port, `shutdown()` stops it."""

    def __init__(self, registry: CollectorRegistry, addr: str, port: int):
        self._httpd, self._thread = start_http_server(port, addr, registry)
        self.addr = addr
        self.port = int(self._httpd.server_port)

    def shutdown(self) -> None:
        """Stop serving and release the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


def _timestamp(value: Any) -> float | None:
    """Turn a card's created_at (ISO 8601 or Unix seconds) into Unix seconds."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
