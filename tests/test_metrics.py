from __future__ import annotations

import urllib.request

import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from monitor import __version__
from monitor.metrics import Metrics


def samples(m: Metrics) -> dict[tuple[str, frozenset], float]:
    """Return {(sample name, labels): value} of everything the registry exports."""
    out = {}
    for family in text_string_to_metric_families(generate_latest(m.registry).decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(m: Metrics, name: str, **labels: str) -> float | None:
    return samples(m).get((name, frozenset(labels.items())))


def test_each_metrics_object_has_its_own_registry():
    a, b = Metrics(), Metrics()
    a.check_done("509658", "mismatch")
    assert value(a, "twitchwatch_checks_total", category="509658", outcome="mismatch") == 1
    assert value(b, "twitchwatch_checks_total", category="509658", outcome="mismatch") is None
    assert "twitchwatch_checks_total" not in generate_latest(REGISTRY).decode()


def test_checks_are_counted_by_category_and_outcome():
    m = Metrics()
    for outcome in ("agree", "agree", "mismatch", "unsure", "offline", "error"):
        m.check_done("21779", outcome)
    assert value(m, "twitchwatch_checks_total", category="21779", outcome="agree") == 2
    assert value(m, "twitchwatch_checks_total", category="21779", outcome="error") == 1
    with pytest.raises(ValueError, match="outcome"):
        m.check_done("21779", "maybe")


def test_each_stage_has_its_own_histogram_and_buckets():
    m = Metrics()
    m.observe_stage("capture", 11.5)
    m.observe_stage("decode", 0.3)
    m.observe_stage("inference", 0.04)
    assert value(m, "twitchwatch_capture_duration_seconds_bucket", le="12.0") == 1
    assert value(m, "twitchwatch_capture_duration_seconds_bucket", le="10.0") == 0
    assert value(m, "twitchwatch_decode_duration_seconds_bucket", le="0.5") == 1
    assert value(m, "twitchwatch_decode_duration_seconds_bucket", le="0.25") == 0
    assert value(m, "twitchwatch_inference_duration_seconds_bucket", le="0.05") == 1
    assert value(m, "twitchwatch_inference_duration_seconds_sum") == pytest.approx(0.04)
    with pytest.raises(ValueError, match="stage"):
        m.observe_stage("upload", 1.0)


def test_helix_requests_count_status_and_keep_the_last_ratelimit_remaining():
    m = Metrics()
    m.helix_request("streams", 200, 799)
    m.helix_request("streams", 429, 0)
    m.helix_request("token", 200, None)
    m.helix_request("streams", 0, None)  # no answer at all
    assert value(m, "twitchwatch_helix_requests_total", endpoint="streams", status="200") == 1
    assert value(m, "twitchwatch_helix_requests_total", endpoint="streams", status="429") == 1
    assert value(m, "twitchwatch_helix_requests_total", endpoint="streams", status="0") == 1
    # A response without the header (token endpoint) leaves the last known budget alone.
    assert value(m, "twitchwatch_helix_ratelimit_remaining") == 0


def test_bytes_are_counted_by_kind():
    m = Metrics()
    m.bytes_downloaded("video", 1_000_000)
    m.bytes_downloaded("video", 500)
    m.bytes_downloaded("thumbnail", 20_000)
    assert value(m, "twitchwatch_downloaded_bytes_total", kind="video") == 1_000_500
    assert value(m, "twitchwatch_downloaded_bytes_total", kind="thumbnail") == 20_000
    with pytest.raises(ValueError):
        m.bytes_downloaded("audio", 1)


def test_flag_events_and_open_flags_by_declared_category():
    m = Metrics()
    m.flag_event("open", "509658")
    m.flag_event("close", "509658", "agree")
    assert value(m, "twitchwatch_flag_events_total", action="open", category="509658", reason="") == 1
    assert value(m, "twitchwatch_flag_events_total", action="close", category="509658", reason="agree") == 1
    m.flag_event("extend", "509658")  # the store's "one more check" on an open flag: not an event
    assert value(m, "twitchwatch_flag_events_total", action="extend", category="509658", reason="") is None
    with pytest.raises(ValueError, match="flag action"):
        m.flag_event("reopen", "509658")
    m.set_open_flags({"509658": 3, "21779": 1})
    m.set_open_flags({"509658": 2})
    assert value(m, "twitchwatch_open_flags", category="509658") == 2
    # A category without open flags any more reads 0, not its last count.
    assert value(m, "twitchwatch_open_flags", category="21779") == 0


def test_cycle_done_moves_the_last_success_timestamp_only_when_ok():
    m = Metrics()
    assert value(m, "twitchwatch_last_successful_cycle_timestamp_seconds") == 0
    m.cycle_done(42.0, ok=False)
    assert value(m, "twitchwatch_last_successful_cycle_timestamp_seconds") == 0
    assert value(m, "twitchwatch_cycles_total", result="failed") == 1
    m.cycle_done(40.0, ok=True)
    assert value(m, "twitchwatch_last_successful_cycle_timestamp_seconds") > 1.6e9
    assert value(m, "twitchwatch_cycle_duration_seconds_count") == 2
    assert value(m, "twitchwatch_cycles_total", result="ok") == 1


def test_set_model_exports_info_accuracy_and_training_time():
    m = Metrics()
    m.set_model({"id": "m-20240101", "arch": "squeezenet1_1", "classes": ["21779", "509658"],
                 "test_accuracy": 0.75, "created_at": "2024-01-01T00:00:00+00:00"})
    labels = {"id": "m-20240101", "arch": "squeezenet1_1", "classes": "21779,509658"}
    assert value(m, "twitchwatch_model_info", **labels) == 1
    assert value(m, "twitchwatch_model_test_accuracy_ratio") == 0.75
    assert value(m, "twitchwatch_model_trained_timestamp_seconds") == 1704067200
    # A promoted model replaces the info series rather than adding a second one.
    m.set_model({"model_id": "m2", "arch": "squeezenet1_0", "classes": ["1"], "created_at": "2024-01-02T00:00:00Z"})
    infos = [k for k in samples(m) if k[0] == "twitchwatch_model_info"]
    assert infos == [("twitchwatch_model_info", frozenset({"id": "m2", "arch": "squeezenet1_0", "classes": "1"}.items()))]
    assert value(m, "twitchwatch_model_trained_timestamp_seconds") == 1704153600


def test_build_info_job_errors_interval_and_webhook():
    m = Metrics()
    m.job_error()
    m.set_interval(300)
    m.webhook_delivery("failed")
    flat = samples(m)
    build = [dict(k[1]) for k in flat if k[0] == "twitchwatch_build_info"]
    assert build and build[0]["version"] == __version__ and build[0]["python_version"].startswith("3.")
    assert value(m, "twitchwatch_job_errors_total") == 1
    assert value(m, "twitchwatch_poll_interval_seconds") == 300
    assert value(m, "twitchwatch_webhook_deliveries_total", result="failed") == 1
    assert value(m, "process_start_time_seconds") > 1.6e9


def test_no_label_is_a_channel():
    m = Metrics()
    m.check_done("509658", "agree")
    m.helix_request("streams", 200, 1)
    m.flag_event("open", "509658")
    names = {name for k in samples(m) for name, _ in k[1]}
    assert names <= {"category", "outcome", "endpoint", "status", "kind", "action", "reason", "result",
                     "le", "version", "python_version", "id", "arch", "classes", "area", "name"}


def test_known_label_values_start_at_0_so_increase_sees_the_first_failure():
    m = Metrics()
    m.watch_categories(["509658", "21779"])
    for category in ("509658", "21779"):
        for outcome in ("agree", "mismatch", "unsure", "offline", "error"):
            assert value(m, "twitchwatch_checks_total", category=category, outcome=outcome) == 0
        assert value(m, "twitchwatch_flag_events_total", action="open", category=category, reason="") == 0
        for reason in ("agrees", "left_category", "offline"):
            assert value(m, "twitchwatch_flag_events_total", action="close", category=category, reason=reason) == 0
        assert value(m, "twitchwatch_open_flags", category=category) == 0
    for endpoint in ("token", "streams", "users", "games"):
        for status in ("0", "200", "401", "429", "500", "503"):
            assert value(m, "twitchwatch_helix_requests_total", endpoint=endpoint, status=status) == 0
    assert value(m, "twitchwatch_cycles_total", result="failed") == 0
    assert value(m, "twitchwatch_webhook_deliveries_total", result="dropped") == 0
    assert value(m, "twitchwatch_retention_errors_total", area="review") == 0
    assert value(m, "twitchwatch_downloaded_bytes_total", kind="thumbnail") == 0
    # Priming adds series; it never resets one that already counted.
    m.check_done("509658", "error")
    m.watch_categories(["509658"])
    assert value(m, "twitchwatch_checks_total", category="509658", outcome="error") == 1
    assert m.checks_recorded() == 1


def test_category_info_names_each_watched_category_and_a_new_name_replaces_the_old():
    m = Metrics()
    m.watch_categories(["509658", "999"])

    def infos() -> set[tuple[str, str]]:
        return {(dict(k[1])["category"], dict(k[1])["name"]) for k in samples(m)
                if k[0] == "twitchwatch_category_info"}

    assert infos() == {("509658", "509658"), ("999", "999")}  # an id until Helix names it
    m.set_category_names({"509658": "Just Chatting"})
    assert infos() == {("509658", "Just Chatting"), ("999", "999")}
    m.watch_categories(["509658"])  # a reload keeps the name it has
    assert ("509658", "Just Chatting") in infos()


def test_activity_moves_with_checks_and_helix_answers():
    m = Metrics()
    before = m.last_activity()
    m.helix_request("streams", 200, 10)
    assert m.last_activity() >= before
    after_helix = m.last_activity()
    m.check_done("1", "agree")
    assert m.last_activity() >= after_helix


def test_serve_exposes_metrics_over_http_and_shuts_down():
    m = Metrics()
    m.check_done("509658", "agree")
    server = m.serve("127.0.0.1", 0)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read().decode()
    finally:
        server.shutdown()
    assert 'twitchwatch_checks_total{category="509658",outcome="agree"} 1.0' in body
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=2)
