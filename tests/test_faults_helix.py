"""Helix faults made to happen on the stand-in: token lifetime, revocation, a token endpoint down,
the rate limit across threads, 5xx and resets, broken pagination, hostile bodies."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from fault_helpers import Clock, helix_client, live_logins

from monitor import helix as helix_module
from monitor.errors import HelixError
from monitor.metrics import Metrics
from monitor.sim import StandIn, small_scenario


@pytest.fixture
def short_tokens(standin_cache):
    """A stand-in whose app tokens live 60 s."""
    with StandIn(small_scenario(), cache_dir=standin_cache, token_ttl_seconds=60) as sim:
        yield sim


@pytest.fixture
def long_tokens(standin_cache):
    """A stand-in whose app tokens live 60 days, as Twitch's do."""
    with StandIn(small_scenario(), cache_dir=standin_cache, token_ttl_seconds=60 * 86400) as sim:
        yield sim


def test_a_token_is_renewed_at_three_quarters_of_its_lifetime_not_before_each_request(short_tokens):
    clock = Clock()
    metrics = Metrics()
    helix = helix_client(short_tokens, clock=clock, on_request=metrics.helix_request)
    for _ in range(5):
        helix.game_names(["21779"])
    clock.advance(44)  # 44 s of a 60 s token: still well inside its life
    helix.game_names(["21779"])
    assert short_tokens.counters.tokens_issued == 1
    clock.advance(2)  # 46 s > 3/4 of 60 s
    helix.game_names(["21779"])
    assert short_tokens.counters.tokens_issued == 2
    assert helix.tokens_minted == 2
    assert metrics.registry.get_sample_value("twitchwatch_helix_tokens_minted_total") == 2
    assert short_tokens.counters.answers("/helix/", 401) == 0  # renewed before it ran out


def test_the_token_is_validated_hourly_and_a_revoked_one_is_replaced_before_use(long_tokens):
    clock = Clock()
    helix = helix_client(long_tokens, clock=clock)
    helix.game_names(["21779"])
    clock.advance(1800)
    helix.game_names(["21779"])
    assert long_tokens.counters.requests("/oauth2/validate") == 0
    clock.advance(1801)
    helix.game_names(["21779"])
    helix.game_names(["21779"])
    assert long_tokens.counters.requests("/oauth2/validate") == 1  # once an hour, not per request
    assert long_tokens.counters.tokens_issued == 1
    long_tokens.revoke_tokens()
    clock.advance(3601)
    assert helix.game_names(["21779"]) == {"21779": "League of Legends"}
    assert long_tokens.counters.requests("/oauth2/validate") == 2
    assert long_tokens.counters.tokens_issued == 2
    assert long_tokens.counters.answers("/helix/", 401) == 0  # validation caught it, no Helix call was refused


def test_a_token_revoked_mid_cycle_is_minted_once_however_many_threads_hit_the_401(long_tokens):
    helix = helix_client(long_tokens)
    helix.game_names(["21779"])
    long_tokens.revoke_tokens()
    barrier = threading.Barrier(8)
    results: list[int] = []
    errors: list[Exception] = []

    def work() -> None:
        barrier.wait()
        try:
            results.append(len(helix.top_streams("509658", 10)))
        except Exception as exc:  # noqa: BLE001 - any failure fails the test below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert results == [4] * 8
    assert long_tokens.counters.tokens_issued == 2  # one mint for the revocation, not one per thread
    assert long_tokens.counters.answers("/helix/", 401) <= 8  # each thread at most one refused request


def test_a_token_endpoint_down_fails_fast_with_jittered_backoff_then_recovers(standin, monkeypatch, caplog):
    monkeypatch.setattr(helix_module.random, "uniform", lambda a, b: b)  # the jitter's top: deterministic
    clock = Clock()
    helix = helix_client(standin, clock=clock)
    standin.set_token_endpoint_down(True)
    caplog.set_level(logging.DEBUG, "monitor.helix")
    for _ in range(10):  # a cycle's worth of listings: one mint attempt, the others fail fast
        with pytest.raises(HelixError):
            helix.top_streams("21779", 5)
    assert standin.counters.requests("/oauth2/token") == 1
    assert standin.counters.requests("/helix/") == 0  # nothing is sent without a token
    clock.advance(2.5)  # past the first backoff (2 s): one more try, and the backoff doubles
    with pytest.raises(HelixError):
        helix.top_streams("21779", 5)
    clock.advance(2.5)  # inside the second backoff (4 s): no try
    with pytest.raises(HelixError, match="next try in"):
        helix.top_streams("21779", 5)
    assert standin.counters.requests("/oauth2/token") == 2
    assert [r.getMessage() for r in caplog.records if "minting" in r.getMessage()] == [
        "helix: minting an app token failed (1 in a row); next try in 2.0s",
        "helix: minting an app token failed (2 in a row); next try in 4.0s",
    ]
    standin.set_token_endpoint_down(False)
    clock.advance(4)
    assert len(helix.top_streams("21779", 5)) == 3
    assert standin.counters.tokens_issued == 1


def test_an_empty_bucket_with_a_future_reset_stops_every_thread_from_sending(standin):
    helix = helix_client(standin)
    helix.game_names(["21779"])
    standin.drain_bucket(reset_in=1.5)
    barrier = threading.Barrier(4)
    errors: list[Exception] = []

    def work() -> None:
        barrier.wait()
        try:
            for _ in range(3):
                helix.game_names(["21779"])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    started = time.monotonic()
    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert time.monotonic() - started >= 1.0  # they waited for the Reset
    refused = standin.counters.answers("/helix/", 429)
    # Only requests already in flight when the first 429 came back are refused: at most one per thread.
    assert 1 <= refused <= 4
    assert standin.counters.requests("/helix/") == 1 + 12 + refused


@pytest.mark.parametrize("fault", ["503", "500", "reset"])
def test_server_errors_and_resets_are_retried_a_bounded_number_of_times(standin, fault):
    helix = helix_client(standin, sleep=lambda s: None)
    helix.game_names(["21779"])
    standin.set_helix_fault(fault, "streams", times=2)
    assert len(helix.top_streams("21779", 5)) == 3  # two failures, then the answer
    assert standin.counters.requests("/helix/streams") == 3
    standin.set_helix_fault(fault, "streams")  # until cleared
    with pytest.raises(HelixError):
        helix.top_streams("21779", 5)
    assert standin.counters.requests("/helix/streams") == 3 + 1 + helix_module.MAX_SERVER_RETRIES


@pytest.mark.parametrize("fault", ["overlap", "repeat", "empty", "loop"])
def test_broken_pagination_lists_every_stream_once_in_bounded_requests(standin, fault):
    helix = helix_client(standin)
    expected = live_logins(standin, "509658")
    standin.set_pagination_fault(fault)
    items = list(helix.paginate("streams", {"game_id": "509658"}, limit=100, page_size=2))
    logins = [item["user_login"] for item in items]
    assert sorted(logins) == sorted(expected)  # each once
    pages = standin.counters.requests("/helix/streams")
    assert 2 <= pages <= 4  # 2 real pages, plus the repeated or empty one or the loop back


def test_a_cursor_that_keeps_looping_is_capped_by_max_pages(standin):
    helix = helix_client(standin)
    standin.set_pagination_fault("loop")
    # Pages of one: the loop-back page 1 hands out a cursor seen before, and the walk stops there.
    list(helix.paginate("streams", {"game_id": "509658"}, limit=100, page_size=1))
    assert standin.counters.requests("/helix/streams") <= len(live_logins(standin, "509658")) + 1


def test_a_50_mb_body_is_refused_without_reading_it_in_one_log_line(standin, caplog):
    helix = helix_client(standin, sleep=lambda s: None)
    helix.game_names(["21779"])
    standin.set_helix_fault("huge", "streams", times=1)
    started = time.monotonic()
    with pytest.raises(HelixError, match="refused") as err:
        helix.top_streams("21779", 5)
    assert time.monotonic() - started < 5
    assert len(str(err.value).splitlines()) == 1
    assert len(helix.top_streams("21779", 5)) == 3  # the next answer is read as usual


def test_a_body_that_is_not_json_is_one_clear_error(standin):
    helix = helix_client(standin)
    standin.set_helix_fault("not_json", "streams", times=1)
    with pytest.raises(HelixError, match="not JSON"):
        helix.top_streams("21779", 5)


@pytest.mark.parametrize("fault", ["wrong_types", "hostile_login"])
def test_an_item_of_the_wrong_type_or_shape_is_dropped_with_one_log_line(standin, caplog, fault):
    helix = helix_client(standin)
    standin.set_helix_fault(fault, "streams", times=1)
    caplog.set_level(logging.WARNING, "monitor.helix")
    streams = helix.top_streams("509658", 10)
    assert len(streams) == len(live_logins(standin, "509658")) - 1
    assert all(s.user_login in live_logins(standin, "509658") for s in streams)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "dropped 1 invalid item" in lines[0]


def test_a_stream_declaring_no_category_or_an_unknown_one_parses_and_lists_under_none(standin):
    helix = helix_client(standin)
    honest = sorted(live_logins(standin, "21779"))
    standin.set_game(honest[0], "")
    standin.set_game(honest[1], "999999999")
    assert helix.stream_of(honest[0]).game_id == ""
    assert helix.stream_of(honest[1]).game_id == "999999999"
    assert helix.game_names(["999999999"]) == {}
    assert [s.user_login for s in helix.top_streams("21779", 10)] == [honest[2]]
