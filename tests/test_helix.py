"""The Helix client against the stand-in: tokens, 401 retry, rate limit, pagination."""

from __future__ import annotations

import time

import pytest

from monitor.config import TwitchConfig
from monitor.errors import AuthError, HelixError
from monitor.helix import HelixClient


def client(sim, **kwargs) -> HelixClient:
    return HelixClient(TwitchConfig(**sim.twitch_config()), **kwargs)


def test_token_is_minted_once_and_reused(standin):
    helix = client(standin)
    helix.game_names(["21779"])
    helix.top_streams("21779", 5)
    helix.user("nobody_here")
    assert standin.counters.tokens_issued == 1
    assert standin.counters.requests("/oauth2/token") == 1


def test_expired_token_is_renewed_once_and_the_request_succeeds(standin):
    helix = client(standin)
    first = helix.top_streams("21779", 5)
    standin.expire_tokens()
    again = helix.top_streams("21779", 5)
    assert [s.id for s in again] == [s.id for s in first]
    assert standin.counters.tokens_issued == 2


def test_drained_bucket_waits_for_reset_instead_of_sending(standin):
    slept: list[float] = []
    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    helix = client(standin, sleep=sleep)
    helix.game_names(["21779"])
    before = standin.counters.requests("/helix/")
    standin.drain_bucket(reset_in=1.5)
    names = helix.game_names(["21779"])  # answered 429 once, then waits for Ratelimit-Reset
    assert names == {"21779": "League of Legends"}
    assert slept and 0.5 <= sum(slept) <= 3.0
    # One refused request, then one after the wait: no hammering.
    assert standin.counters.requests("/helix/") - before == 2
    # The next request knows the bucket from the headers and goes straight through.
    helix.game_names(["21779"])
    assert standin.counters.requests("/helix/") - before == 3


def test_pagination_returns_every_stream_once_when_pages_overlap(standin):
    helix = client(standin)
    expected = {s.id for s in helix.top_streams("509658", 100)}
    assert len(expected) >= 3
    standin.set_duplicate_pagination(True)
    before = standin.counters.requests("/helix/streams")
    seen = [item["id"] for item in helix.paginate("streams", {"game_id": "509658"}, limit=100, page_size=2)]
    pages = standin.counters.requests("/helix/streams") - before
    assert pages >= 2  # the overlap really happened across page boundaries
    assert len(seen) == len(set(seen))
    assert set(seen) == expected


def test_streams_are_ordered_by_viewers(small_standin):
    streams = client(small_standin).top_streams("509658", 100)
    assert streams
    assert [s.viewer_count for s in streams] == sorted((s.viewer_count for s in streams), reverse=True)
    assert all(s.game_id == "509658" for s in streams)


def test_top_games_come_most_watched_first_and_tell_games_from_other_categories(small_standin):
    games = client(small_standin).top_games(10)
    assert {g.id for g in games} == {"21779", "509658", "33214"}
    assert {g.id: g.is_game for g in games} == {"21779": True, "509658": False, "33214": True}  # no IGDB id
    viewers = {g.id: sum(c.viewer_count for c in small_standin.scenario.channels if c.declared_game_id == g.id)
               for g in games}
    assert [viewers[g.id] for g in games] == sorted(viewers.values(), reverse=True)


def test_wrong_secret_is_a_clear_auth_error(small_standin):
    cfg = dict(small_standin.twitch_config(), client_secret="wrong-secret-value")
    with pytest.raises(AuthError) as err:
        HelixClient(TwitchConfig(**cfg)).top_streams("21779", 1)
    assert "wrong-secret-value" not in str(err.value)
    assert "client_secret" in str(err.value)


def test_unreachable_helix_is_one_clear_error():
    cfg = TwitchConfig(client_id="x", client_secret="y", helix_url="http://127.0.0.1:9/helix",
                       auth_url="http://127.0.0.1:9/oauth2", request_timeout_seconds=2)
    with pytest.raises(HelixError, match=r"cannot reach Twitch at http://127\.0\.0\.1:9"):
        HelixClient(cfg).top_streams("21779", 1)


def test_bad_cursor_is_a_helix_error(small_standin):
    with pytest.raises(HelixError) as err:
        client(small_standin).get("streams", {"after": "not-a-cursor"})
    assert err.value.status == 400
