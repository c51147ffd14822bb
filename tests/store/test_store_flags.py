"""Recording checks opens, extends and closes flags; flags() and observations() read them back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from monitor.errors import StoreError
from monitor.record import CheckRecord
from monitor.store import Store

CHAT, LOL, FORTNITE, UNKNOWN = "509658", "21779", "33214", "516575"
T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
FLAG_KEYS = {"id", "user_login", "user_id", "declared_game_id", "declared_game_name", "predicted_game_id",
             "predicted_game_name", "confidence", "first_seen", "last_seen", "checks", "status", "close_reason"}


def check(outcome: str, *, minute: int = 0, user: str = "1", login: str = "alice", declared: str = CHAT,
          predicted: str | None = LOL, confidence: float | None = 0.9, **more) -> CheckRecord:
    label = "" if outcome in ("offline", "error") else (predicted or "gameplay")
    values = dict(
        user_id=user, user_login=login, display_name=login.title(), declared_game_id=declared,
        declared_game_name={CHAT: "Just Chatting", LOL: "League of Legends"}.get(declared, "Valorant"),
        stream_id=f"stream-{user}", outcome=outcome, predicted_game_id=predicted, predicted_label=label,
        confidence=confidence, scores={LOL: 0.9, CHAT: 0.1}, model_id="m1", frames_decoded=18,
        frames_expected=18, checked_at=T0 + timedelta(minutes=minute),
    )
    values.update(more)
    return CheckRecord(**values)


def feed(store: Store, *outcomes: str, confirmations: int = 2, **kw) -> list[str | None]:
    """Record one check per outcome, five minutes apart; return the flag actions."""
    actions = []
    for i, outcome in enumerate(outcomes):
        event = store.record(check(outcome, minute=5 * i, **kw), confirmations=confirmations)
        actions.append(event and event.action)
    return actions


def test_one_mismatch_opens_no_flag_and_two_do(store):
    assert feed(store, "mismatch") == [None]
    assert store.flags() == []
    event = store.record(check("mismatch", minute=5), confirmations=2)
    assert event.action == "open"
    [flag] = store.flags()
    assert flag == event.flag
    assert flag["status"] == "open" and flag["checks"] == 2
    assert flag["first_seen"] == "2024-05-01T12:00:00.123456Z"  # the first mismatch of the run
    assert flag["last_seen"] == "2024-05-01T12:05:00.123456Z"


def test_unsure_between_mismatches_does_not_reset_the_run(store):
    assert feed(store, "mismatch", "unsure", "error", "mismatch") == [None, None, None, "open"]


def test_further_mismatches_extend_the_flag_with_the_latest_prediction(store):
    feed(store, "mismatch", "mismatch")
    event = store.record(check("mismatch", minute=10, predicted=FORTNITE, confidence=0.7), confirmations=2)
    assert event.action == "extend"
    [flag] = store.flags()
    assert flag["checks"] == 3
    assert flag["predicted_game_id"] == FORTNITE and flag["predicted_game_name"] == "Fortnite"
    assert flag["confidence"] == pytest.approx(0.7)
    assert flag["last_seen"] == "2024-05-01T12:10:00.123456Z"


def test_agreeing_again_closes_the_flag(store):
    assert feed(store, "mismatch", "mismatch", "agree") == [None, "open", "close"]
    assert store.flags() == []
    [flag] = store.flags(include_closed=True)
    assert flag["status"] == "closed" and flag["close_reason"] == "agrees"
    # A new run opens a new flag, never reopens the old one.
    event = store.record(check("mismatch", minute=20), confirmations=2)
    assert event is None
    event = store.record(check("mismatch", minute=25), confirmations=2)
    assert event.action == "open" and event.flag["id"] != flag["id"]
    assert event.flag["first_seen"] == "2024-05-01T12:20:00.123456Z"
    assert len(store.flags(include_closed=True)) == 2


def test_declaring_another_category_closes_the_flag(store):
    feed(store, "mismatch", "mismatch")
    event = store.record(check("unsure", minute=10, declared=LOL), confirmations=2)
    assert event.action == "close" and event.reason == "left_category"
    assert event.flag["close_reason"] == "left_category"


def test_offline_closes_the_flag(store):
    feed(store, "mismatch", "mismatch")
    event = store.record(check("offline", minute=10, predicted=None, confidence=None), confirmations=2)
    assert (event.action, event.reason) == ("close", "offline")


def test_close_missing_closes_flags_of_channels_gone_from_the_category(store):
    feed(store, "mismatch", "mismatch", user="1", login="alice")
    feed(store, "mismatch", "mismatch", user="2", login="bob")
    feed(store, "mismatch", "mismatch", user="3", login="carol", declared=LOL, predicted=FORTNITE)
    events = store.close_missing(CHAT, {"2", "99"})
    assert [(e.action, e.reason, e.flag["user_login"]) for e in events] == [("close", "offline", "alice")]
    assert sorted(f["user_login"] for f in store.flags()) == ["bob", "carol"]
    closed = [f for f in store.flags(include_closed=True) if f["status"] == "closed"]
    assert [(f["user_login"], f["close_reason"]) for f in closed] == [("alice", "offline")]
    assert store.close_missing(CHAT, {"2"}) == []  # nothing left to close
    # The streak was reset: one mismatch after coming back is not a flag yet.
    assert store.record(check("mismatch", minute=30), confirmations=2) is None


def test_one_open_flag_per_channel_across_many_runs(store):
    feed(store, "mismatch", "mismatch", "mismatch", "agree", "mismatch", "mismatch", "offline",
         "mismatch", "mismatch")
    flags = store.flags(include_closed=True)
    assert [f["status"] for f in flags] == ["open", "closed", "closed"]
    assert [f["close_reason"] for f in flags] == [None, "offline", "agrees"]
    assert [f["checks"] for f in flags] == [2, 2, 3]


def test_flags_json_shape_and_utc_iso_strings(store):
    feed(store, "mismatch", "mismatch", user="1", login="alice")
    feed(store, "mismatch", "mismatch", user="2", login="bob", predicted=None)
    flags = store.flags()
    for flag in flags:
        assert set(flag) == FLAG_KEYS
        for key in ("first_seen", "last_seen"):
            assert flag[key].endswith("Z")
            parsed = datetime.fromisoformat(flag[key])
            assert parsed.utcoffset() == timedelta(0)
    by_login = {f["user_login"]: f for f in flags}
    assert by_login["alice"]["predicted_game_name"] == "League of Legends"
    assert by_login["alice"]["declared_game_name"] == "Just Chatting"
    assert by_login["bob"]["predicted_game_id"] is None
    assert by_login["bob"]["predicted_game_name"] == "gameplay"
    assert by_login["bob"]["user_id"] == "2"


def test_flags_are_newest_first(store):
    feed(store, "mismatch", "mismatch", user="1", login="alice")
    store.record(check("mismatch", minute=60, user="2", login="bob"), confirmations=2)
    store.record(check("mismatch", minute=65, user="2", login="bob"), confirmations=2)
    assert [f["user_login"] for f in store.flags()] == ["bob", "alice"]


def test_times_given_in_another_zone_are_stored_and_returned_in_utc(store):
    paris = timezone(timedelta(hours=2))
    at = datetime(2024, 5, 1, 14, 0, tzinfo=paris)
    store.record(check("mismatch", checked_at=at), confirmations=1)
    [flag] = store.flags()
    assert flag["first_seen"] == "2024-05-01T12:00:00Z"


def test_a_naive_time_is_refused(store):
    with pytest.raises(StoreError, match="naive datetime"):
        store.record(check("agree", checked_at=datetime(2024, 5, 1, 12, 0)), confirmations=2)


def test_observation_round_trip(store):
    obs = check("mismatch", scores={LOL: 0.7, CHAT: 0.2, FORTNITE: 0.1}, capture_seconds=12.5,
                decode_seconds=0.25, inference_seconds=0.125, bytes_downloaded=5_000_000_000)
    store.record(obs, confirmations=2)
    store.record(check("error", minute=1, predicted=None, confidence=None, scores={}, error="capture timed out",
                       frames_decoded=0), confirmations=2)
    store.record(check("agree", user="2", login="bob"), confirmations=2)
    rows = store.observations(login="alice")
    assert [r["outcome"] for r in rows] == ["error", "mismatch"]
    failed, row = rows
    assert failed["error"] == "capture timed out" and failed["scores"] == {} and failed["confidence"] is None
    assert row["scores"] == {LOL: 0.7, CHAT: 0.2, FORTNITE: 0.1}
    assert row["checked_at"] == "2024-05-01T12:00:00.123456Z"
    assert row == {
        "id": row["id"], "user_id": "1", "user_login": "alice", "display_name": "Alice", "stream_id": "stream-1",
        "checked_at": "2024-05-01T12:00:00.123456Z", "declared_game_id": CHAT,
        "declared_game_name": "Just Chatting", "outcome": "mismatch", "predicted_game_id": LOL,
        "predicted_label": LOL, "confidence": 0.9, "scores": {LOL: 0.7, CHAT: 0.2, FORTNITE: 0.1},
        "model_id": "m1", "frames_decoded": 18, "frames_expected": 18, "capture_seconds": 12.5,
        "decode_seconds": 0.25, "inference_seconds": 0.125, "bytes_downloaded": 5_000_000_000, "error": None,
    }
    assert len(store.observations()) == 3
    assert len(store.observations(limit=2)) == 2


def test_numpy_like_scores_are_stored_as_plain_floats(store):
    import numpy as np

    store.record(check("agree", scores={LOL: np.float32(0.75), CHAT: np.float64(0.25)}), confirmations=2)
    [row] = store.observations()
    assert row["scores"] == {LOL: 0.75, CHAT: 0.25}


def test_a_renamed_channel_keeps_its_flag_and_its_old_login_can_be_reused(store):
    feed(store, "mismatch", "mismatch", user="1", login="alice")
    # alice renamed herself; another account took her old name and is seen first.
    store.record(check("agree", user="7", login="alice"), confirmations=2)
    store.record(check("mismatch", minute=10, user="1", login="alice_new"), confirmations=2)
    [flag] = store.flags()
    assert flag["user_login"] == "alice_new" and flag["checks"] == 3
    assert [r["user_id"] for r in store.observations(login="alice")] == ["7"]


def test_unknown_categories_keep_their_id_as_name(store):
    store.record(check("mismatch", predicted="999"), confirmations=1)
    [flag] = store.flags()
    assert flag["predicted_game_name"] == "999"
    store.upsert_categories({"999": "Some Game"})
    assert store.flags()[0]["predicted_game_name"] == "Some Game"


def test_record_on_a_database_never_migrated_is_a_store_error(database_url):
    store = Store(database_url)
    try:
        with pytest.raises(StoreError) as err:
            store.record(check("agree"), confirmations=2)
        assert "\n" not in str(err.value)
    finally:
        store.dispose()
