"""One poll cycle with fakes for Helix, the store and the check: what it lists, checks, tallies and skips.

The end-to-end cycles against the Twitch stand-in are in test_end_to_end.py
and test_daemon.py; these pin run_cycle's own rules in milliseconds.
"""

from __future__ import annotations

import threading
from pathlib import Path

from monitor.check import CheckResult
from monitor.config import load_config
from monitor.cycle import run_cycle
from monitor.errors import HelixError
from monitor.helix import Stream
from monitor.metrics import Metrics
from monitor.model_registry import ModelRegistry
from monitor.store import FlagEvent

CHAT, LOL, FORTNITE = "509658", "21779", "33214"


def stream(login: str, game_id: str) -> Stream:
    return Stream(id=f"s-{login}", user_id=f"u-{login}", user_login=login, user_name=login.title(),
                  game_id=game_id, game_name=game_id, viewer_count=10, thumbnail_url="", started_at="")


class FakeHelix:
    def __init__(self, listings: dict[str, list[Stream] | Exception]):
        self.listings = listings

    def top_streams(self, game_id: str, first: int) -> list[Stream]:
        listed = self.listings[game_id]
        if isinstance(listed, Exception):
            raise listed
        return listed[:first]


class FakeStore:
    def __init__(self, closes: dict[str, list[FlagEvent]] | None = None, open_flags: list[dict] | None = None):
        self.closes = closes or {}
        self.open_flags = open_flags or []
        self.live: dict[str, set[str]] = {}

    def close_missing(self, category_id: str, live_user_ids: set[str]) -> list[FlagEvent]:
        self.live[category_id] = live_user_ids
        return self.closes.get(category_id, [])

    def flags(self) -> list[dict]:
        return self.open_flags

    def reviewed_flag_counts(self) -> dict[tuple[str, str], int]:
        return {}


class FakeRuntime:
    """What run_cycle uses of monitor.cycle.Runtime, with no database, Twitch or model behind it."""

    def __init__(self, watch: list[str], helix: FakeHelix, store: FakeStore):
        self.cfg = load_config(environ={}, overrides={"categories": {"watch": watch, "chatting": CHAT},
                                                      "monitor": {"streams_per_category": 5}})
        self.helix, self.store = helix, store
        self.registry = ModelRegistry(Path("/nonexistent/twitchwatch-models"))  # no active model: no drift figures
        self.metrics = Metrics()
        self.check_context = object()  # handed to the check untouched
        self.notified: list[FlagEvent] = []

    def classifier(self) -> str:
        return "the active model"

    def category_names(self) -> dict[str, str]:
        return {gid: f"name of {gid}" for gid in self.cfg.categories.watch}

    def notify_flag(self, event: FlagEvent | None) -> None:
        if event is not None:
            self.notified.append(event)


class FakeCheck:
    """Answer each channel with a set outcome (or raise), counting calls; 1,000 bytes a completed check."""

    def __init__(self, rt: FakeRuntime, outcomes: dict[str, str | Exception], opens: set[str] = frozenset()):
        self.rt, self.outcomes, self.opens = rt, outcomes, opens
        self.checked: list[str] = []
        self._lock = threading.Lock()

    def __call__(self, ctx, stream: Stream, classifier) -> CheckResult:
        assert ctx is self.rt.check_context and classifier == "the active model"
        with self._lock:
            self.checked.append(stream.user_login)
        outcome = self.outcomes[stream.user_login]
        if isinstance(outcome, Exception):
            raise outcome
        result = CheckResult.of(stream, outcome, bytes_downloaded=1000 if outcome != "offline" else 0)
        if stream.user_login in self.opens:
            result.flag_event = FlagEvent("open", {"user_login": stream.user_login})
        return result


def sample(rt: FakeRuntime, name: str, **labels: str) -> float | None:
    return rt.metrics.registry.get_sample_value(name, labels)


def test_a_cycle_checks_each_live_channel_once_and_sums_what_the_checks_found():
    closed = FlagEvent("close", {"user_login": "gone"}, "offline")
    store = FakeStore(closes={LOL: [closed]}, open_flags=[{"declared_game_id": CHAT}, {"declared_game_id": CHAT}])
    helix = FakeHelix({
        CHAT: [stream("ann", CHAT), stream("bob", CHAT), stream("cat", CHAT)],
        # bob changed category between the two listings: checked once, under the first
        LOL: [stream("bob", LOL), stream("dan", LOL), stream("eve", LOL)],
    })
    rt = FakeRuntime([CHAT, LOL], helix, store)
    check = FakeCheck(rt, {"ann": "agree", "bob": "mismatch", "cat": "offline", "dan": RuntimeError("bug"),
                           "eve": "unsure"}, opens={"bob"})

    summary = run_cycle(rt, check=check).to_json()

    assert sorted(check.checked) == ["ann", "bob", "cat", "dan", "eve"]
    assert summary["checks"] == 5 and summary["completed"] == 3
    assert summary["verdicts"] == {"agree": 1, "mismatch": 1, "unsure": 1, "offline": 1, "error": 1}
    assert (summary["flags_opened"], summary["flags_closed"]) == (1, 1)
    assert summary["bytes_downloaded"] == 3000  # three completed checks; offline and the raising one add none
    assert summary["categories_failed"] == []
    assert store.live == {CHAT: {"u-ann", "u-bob", "u-cat"}, LOL: {"u-bob", "u-dan", "u-eve"}}
    assert rt.notified == [closed]  # a flag closed by the listing; the check notifies its own
    assert sample(rt, "twitchwatch_cycles_total", result="ok") == 1
    assert sample(rt, "twitchwatch_open_flags", category=CHAT) == 2
    assert sample(rt, "twitchwatch_flag_events_total", action="close", category=LOL, reason="offline") == 1


def test_a_category_whose_listing_fails_is_reported_and_the_others_are_still_checked():
    helix = FakeHelix({CHAT: HelixError("Helix answered 503", status=503), LOL: [stream("dan", LOL)]})
    rt = FakeRuntime([CHAT, LOL], helix, FakeStore())
    check = FakeCheck(rt, {"dan": "agree"})

    summary = run_cycle(rt, check=check).to_json()

    assert check.checked == ["dan"] and summary["completed"] == 1
    assert summary["categories_failed"] == [CHAT]
    assert sample(rt, "twitchwatch_cycles_total", result="failed") == 1
    assert sample(rt, "twitchwatch_cycles_total", result="ok") == 0  # primed at 0, not counted


def test_checks_not_started_when_the_stop_comes_are_abandoned_without_a_check():
    rt = FakeRuntime([CHAT], FakeHelix({CHAT: [stream("ann", CHAT), stream("bob", CHAT)]}), FakeStore())
    check = FakeCheck(rt, {"ann": "agree", "bob": "agree"})
    stop = threading.Event()
    stop.set()

    summary = run_cycle(rt, stop, check=check)

    assert check.checked == []
    assert summary.checks == 2 and summary.completed == 0
    assert summary.verdicts["error"] == 2
    assert {r.record.error for r in summary.results} == {"abandoned: stopping"}
