"""The stand-in's OAuth and Helix: Twitch's shapes, errors, cursors, rate-limit headers."""

from __future__ import annotations

import math

import requests

STREAM_FIELDS = {"id", "user_id", "user_login", "user_name", "game_id", "game_name", "type", "title", "tags",
                 "viewer_count", "started_at", "language", "thumbnail_url", "tag_ids", "is_mature"}
CLIP_FIELDS = {"id", "url", "embed_url", "broadcaster_id", "broadcaster_name", "creator_id", "creator_name",
               "video_id", "game_id", "language", "title", "view_count", "created_at", "thumbnail_url",
               "duration", "vod_offset", "is_featured"}


def _token(sim, **override):
    params = {"client_id": sim.client_id, "client_secret": sim.client_secret, "grant_type": "client_credentials"}
    return requests.post(f"{sim.auth_url}/token", params={**params, **override})


def test_token_flow_by_query_or_form_and_validate(sim):
    answer = _token(sim)
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 600 and len(body["access_token"]) == 30
    form = requests.post(f"{sim.auth_url}/token", data={
        "client_id": sim.client_id, "client_secret": sim.client_secret, "grant_type": "client_credentials"})
    assert form.status_code == 200 and form.json()["access_token"] != body["access_token"]
    assert sim.counters.tokens_issued == 2
    valid = requests.get(f"{sim.auth_url}/validate", headers={"Authorization": f"OAuth {body['access_token']}"})
    assert valid.status_code == 200
    assert valid.json() == {"client_id": sim.client_id, "scopes": [], "expires_in": 600}


def test_token_errors_are_twitchs(sim):
    assert _token(sim, client_secret="nope").json() == {"status": 403, "message": "invalid client secret"}
    assert _token(sim, client_secret="nope").status_code == 403
    assert _token(sim, client_id="someoneelse").json() == {"status": 400, "message": "invalid client"}
    assert _token(sim, grant_type="password").status_code == 400
    assert sim.counters.tokens_issued == 0
    bad = requests.get(f"{sim.auth_url}/validate", headers={"Authorization": "OAuth notatoken"})
    assert bad.status_code == 401 and bad.json() == {"status": 401, "message": "invalid access token"}


def test_token_expires_after_its_ttl(sim, clock, helix):
    assert helix("/games", {"id": "21779"}).status_code == 200
    clock.advance(601)
    answer = helix("/games", {"id": "21779"})
    assert answer.status_code == 401
    assert answer.json() == {"error": "Unauthorized", "status": 401, "message": "Invalid OAuth token"}


def test_expire_tokens_makes_every_token_401_and_a_new_one_works(sim, helix):
    sim.expire_tokens()
    assert helix("/streams").status_code == 401
    fresh = _token(sim).json()["access_token"]
    answer = requests.get(f"{sim.helix_url}/streams",
                          headers={"Client-Id": sim.client_id, "Authorization": f"Bearer {fresh}"})
    assert answer.status_code == 200


def test_missing_credentials_are_401_with_twitchs_messages(sim, token):
    url = f"{sim.helix_url}/streams"
    assert requests.get(url, headers={"Client-Id": sim.client_id}).json()["message"] == "OAuth token is missing"
    no_client = requests.get(url, headers={"Authorization": f"Bearer {token}"})
    assert no_client.status_code == 401 and no_client.json()["message"] == "Client ID is missing"
    sim.register_client("otherapp", "othersecret")
    other = requests.get(url, headers={"Authorization": f"Bearer {token}", "Client-Id": "otherapp"})
    assert other.json() == {"error": "Unauthorized", "status": 401, "message": "Client ID and OAuth token do not match"}


def test_streams_shape_order_and_filters(sim, helix):
    body = helix("/streams", {"first": 100}).json()
    streams = body["data"]
    assert len(streams) == len(sim.scenario.channels) and body["pagination"] == {}
    assert all(set(s) == STREAM_FIELDS for s in streams)
    assert [s["viewer_count"] for s in streams] == sorted((s["viewer_count"] for s in streams), reverse=True)
    assert "{width}x{height}" in streams[0]["thumbnail_url"] and streams[0]["type"] == "live"
    two_games = helix("/streams", [("game_id", "21779"), ("game_id", "33214"), ("first", "100")]).json()["data"]
    assert {s["game_id"] for s in two_games} == {"21779", "33214"} and len(two_games) == 6
    login = streams[0]["user_login"]
    assert [s["user_login"] for s in helix("/streams", {"user_login": login}).json()["data"]] == [login]
    by_id = helix("/streams", {"user_id": streams[0]["user_id"]}).json()["data"]
    assert [s["user_login"] for s in by_id] == [login]


def test_first_out_of_bounds_is_400(helix):
    for first in ("0", "101", "many"):
        answer = helix("/streams", {"first": first})
        assert answer.status_code == 400
        assert answer.json()["error"] == "Bad Request" and "first" in answer.json()["message"]


def test_cursor_walks_every_stream_once_and_the_last_page_is_empty_pagination(helix):
    seen, cursor, pages = [], None, 0
    while True:
        body = helix("/streams", {"first": 3, **({"after": cursor} if cursor else {})}).json()
        seen += [s["id"] for s in body["data"]]
        pages += 1
        if body["pagination"] == {}:
            break
        cursor = body["pagination"]["cursor"]
        assert set(body["pagination"]) == {"cursor"}
    assert pages == math.ceil(10 / 3) and len(seen) == len(set(seen)) == 10


def test_invalid_cursor_is_400(helix):
    for cursor in ("not-a-cursor", "eyJhIjoxfQ", "%%%"):
        answer = helix("/streams", {"after": cursor})
        assert answer.status_code == 400
        assert answer.json() == {"error": "Bad Request", "status": 400, "message": "invalid cursor"}


def test_duplicate_pagination_repeats_the_last_stream_of_a_page(sim, helix):
    first = helix("/streams", {"first": 4}).json()
    sim.set_duplicate_pagination(True)
    second = helix("/streams", {"first": 4, "after": first["pagination"]["cursor"]}).json()
    assert second["data"][0]["id"] == first["data"][-1]["id"]
    sim.set_duplicate_pagination(False)
    third = helix("/streams", {"first": 4, "after": first["pagination"]["cursor"]}).json()
    assert third["data"][0]["id"] not in {s["id"] for s in first["data"]}


def test_ratelimit_headers_count_down_and_reset_is_unix_seconds(sim, clock, helix):
    answers = [helix("/games", {"id": "21779"}) for _ in range(3)]
    remaining = [int(a.headers["Ratelimit-Remaining"]) for a in answers]
    assert remaining == [19, 18, 17]
    assert all(a.headers["Ratelimit-Limit"] == "20" for a in answers)
    reset = int(answers[-1].headers["Ratelimit-Reset"])
    assert clock.now < reset <= clock.now + 20 / 2.0 + 1


def test_empty_bucket_is_429_until_it_refills(sim, clock, helix):
    for _ in range(20):
        assert helix("/users", {"login": "nobody"}).status_code == 200
    refused = helix("/users", {"login": "nobody"})
    assert refused.status_code == 429
    assert refused.json() == {"error": "Too Many Requests", "status": 429, "message": "Too Many Requests"}
    assert refused.headers["Ratelimit-Remaining"] == "0"
    clock.advance(0.5)  # 2 points a second
    assert helix("/users", {"login": "nobody"}).status_code == 200


def test_drain_bucket_holds_every_client_until_reset(sim, clock, helix):
    sim.drain_bucket(reset_in=2.0)
    refused = helix("/games", {"id": "21779"})
    assert refused.status_code == 429
    assert int(refused.headers["Ratelimit-Reset"]) == math.ceil(clock.now + 2.0)
    clock.advance(1.0)
    assert helix("/games", {"id": "21779"}).status_code == 429  # no trickle refill while held
    clock.advance(1.5)
    again = helix("/games", {"id": "21779"})
    assert again.status_code == 200 and again.headers["Ratelimit-Remaining"] == "19"


def test_buckets_are_per_client_id(sim, helix):
    sim.register_client("otherapp", "othersecret")
    other = requests.post(f"{sim.auth_url}/token", params={
        "client_id": "otherapp", "client_secret": "othersecret", "grant_type": "client_credentials"}).json()
    for _ in range(20):
        helix("/games", {"id": "21779"})
    assert helix("/games", {"id": "21779"}).status_code == 429
    answer = requests.get(f"{sim.helix_url}/games", params={"id": "21779"},
                          headers={"Client-Id": "otherapp", "Authorization": f"Bearer {other['access_token']}"})
    assert answer.status_code == 200 and answer.headers["Ratelimit-Remaining"] == "19"


def test_offline_channel_leaves_streams_and_comes_back_as_a_new_stream(sim, helix):
    login = sim.scenario.channels[0].login
    before = helix("/streams", {"user_login": login}).json()["data"]
    sim.set_offline(login, True)
    assert helix("/streams", {"user_login": login}).json()["data"] == []
    sim.set_offline(login, False)
    after = helix("/streams", {"user_login": login}).json()["data"]
    assert after and after[0]["id"] != before[0]["id"]


def test_set_game_moves_a_channel_to_another_category(sim, helix):
    login = sim.scenario.channels[0].login
    sim.set_game(login, "33214")
    (stream,) = helix("/streams", {"user_login": login}).json()["data"]
    assert (stream["game_id"], stream["game_name"]) == ("33214", "Fortnite")
    assert login in {s["user_login"] for s in helix("/streams", {"game_id": "33214"}).json()["data"]}
    assert sim.truth(login).declared_game_id == "33214"


def test_games_and_top_games(helix):
    games = helix("/games", [("id", "21779"), ("name", "Fortnite")]).json()["data"]
    assert {g["name"] for g in games} == {"League of Legends", "Fortnite"}
    assert set(games[0]) == {"id", "name", "box_art_url", "igdb_id"}
    assert helix("/games").status_code == 400
    top = helix("/games/top", {"first": 2}).json()
    assert len(top["data"]) == 2 and "cursor" in top["pagination"]
    rest = helix("/games/top", {"after": top["pagination"]["cursor"]}).json()
    assert len(rest["data"]) == 1 and rest["pagination"] == {}


def test_users_by_login_and_id(sim, helix):
    channel = sim.scenario.channels[0]
    (user,) = helix("/users", {"login": channel.login}).json()["data"]
    assert user["id"] == channel.user_id and user["display_name"] == channel.display_name
    assert helix("/users", {"id": channel.user_id}).json()["data"][0]["login"] == channel.login
    assert helix("/users").status_code == 400


def test_clips_by_broadcaster_game_and_window(sim, clock, helix):
    channel = sim.scenario.channels[0]
    clips = helix("/clips", {"broadcaster_id": channel.user_id}).json()["data"]
    assert len(clips) == channel.clips and all(set(c) == CLIP_FIELDS for c in clips)
    assert clips[0]["url"].startswith(sim.url) and clips[0]["url"].endswith("/index.m3u8")
    assert clips[0]["duration"] == 10.0
    by_game = helix("/clips", {"game_id": channel.declared_game_id, "first": 100}).json()["data"]
    assert {c["id"] for c in clips} <= {c["id"] for c in by_game}
    future = helix("/clips", {"broadcaster_id": channel.user_id, "started_at": "2100-01-01T00:00:00Z"})
    assert future.json()["data"] == []
    assert helix("/clips", {"id": clips[0]["id"]}).json()["data"][0]["id"] == clips[0]["id"]
    assert helix("/clips").status_code == 400


def test_helix_counts_requests_by_path(sim, helix):
    helix("/streams")
    helix("/streams", {"first": 1})
    helix("/games", {"id": "1"})
    assert sim.counters.requests("/helix/streams") == 2
    assert sim.counters.requests("/helix/") == 3
    assert sim.counters.requests("/oauth2/token") == 1
