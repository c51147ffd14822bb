"""`twitchwatch review`: the queue with contact sheets, verdicts on flags and queued checks, the metrics."""

from __future__ import annotations

import json
import types

import pytest
import requests
from cli_helpers import run_cli
from dbfixtures import database_url, postgres_schema_url, postgres_url  # noqa: F401
from PIL import Image
from review_helpers import CHATTING, FORTNITE, LOL, ReviewWorld
from standin_runtime import constant_model_runtime

from monitor.contact_sheet import COLUMNS, TILE
from monitor.cycle import refresh_open_flags
from monitor.metrics import Metrics
from monitor.retain import read_clips
from monitor.review import interpret_label


@pytest.fixture
def world(tmp_path, database_url):  # noqa: F811
    w = ReviewWorld(tmp_path, database_url)
    yield w
    w.close()


def _review(cli, world, *args):
    return cli("review", *args, "--config", str(world.config_path))


def _queue(cli, world) -> list[dict]:
    code, out, err = _review(cli, world, "--json")
    assert code == 0, err
    return json.loads(out)


# -- what a label means ----------------------------------------------------------------------


@pytest.mark.parametrize(("label", "shows", "verdict"), [
    (LOL, LOL, "confirmed"),          # another watched category than the declared one
    (CHATTING, CHATTING, "rejected"),  # the declared one
    ("ok", CHATTING, "rejected"),
    ("gameplay", "gameplay", "confirmed"),  # some game outside the watched set
])
def test_a_label_says_what_the_screen_shows_and_whether_the_flag_stands(label, shows, verdict):
    assert interpret_label(label, CHATTING, [LOL, CHATTING, FORTNITE]) == (shows, verdict)


# -- the queue -------------------------------------------------------------------------------------


def test_the_queue_lists_each_open_flag_with_its_clips_and_a_contact_sheet_png(cli, world):
    flag_id = world.flag("dana", declared=CHATTING, shows=LOL)
    world.check("eve", declared=LOL, shows=FORTNITE)  # one mismatch: a queued check, no flag
    items = _queue(cli, world)
    assert [(i["kind"], i["user_login"]) for i in items] == [("flag", "dana"), ("check", "eve")]
    flag, check = items
    assert flag["id"] == str(flag_id) and flag["declared_game_id"] == CHATTING and flag["predicted_game_id"] == LOL
    assert flag["channel_url"] == "https://www.twitch.tv/dana"
    assert len(flag["clips"]) == 2  # both checks the flag rests on
    sheet = Image.open(flag["contact_sheet"])
    assert sheet.format == "PNG"
    # One tile per sampled frame (4 here), in one row: wider than three tiles, narrower than COLUMNS + 1.
    assert 4 * TILE < sheet.size[0] < (COLUMNS + 1) * TILE and TILE < sheet.size[1] < 2 * TILE
    assert check["id"] == read_clips(world.data_dir, "review")[-1]["clip_id"]
    assert Image.open(check["contact_sheet"]).format == "PNG"


def test_the_plain_listing_names_each_item_and_its_contact_sheet(cli, world):
    flag_id = world.flag("dana")
    code, out, _ = _review(cli, world)
    assert code == 0
    [line] = out.splitlines()
    assert line.startswith(f"flag {flag_id}: dana declares 'Just Chatting' (509658), shows 'League of Legends'")
    assert line.endswith(".png")


# -- verdicts on flags --------------------------------------------------------------------------


def test_rejecting_a_flag_closes_it_and_its_frames_go_to_training_with_the_declared_label(cli, world):
    flag_id = world.flag("dana", declared=CHATTING, shows=LOL)
    queued = read_clips(world.data_dir, "review")
    code, out, err = _review(cli, world, str(flag_id), "--label", "ok")
    assert code == 0, err
    assert "rejected" in out and "2 clip(s) moved into training" in out
    flag = world.flag_row(flag_id)
    assert flag["status"] == "closed" and flag["close_reason"] == "rejected"
    live = read_clips(world.data_dir, "live")
    assert [(c["category"], c["source"], c["declared_category"]) for c in live] == [(CHATTING, "reviewed", CHATTING)] * 2
    assert sorted(c["review_of"] for c in live) == sorted(c["clip_id"] for c in queued)
    assert all(len(list((world.data_dir / "live" / c["dir"]).glob("*.png"))) == 4 for c in live)
    assert read_clips(world.data_dir, "review") == []  # out of the queue
    assert _queue(cli, world) == []


def test_confirming_a_flag_keeps_it_open_and_labels_its_frames_with_what_the_screen_shows(cli, world):
    flag_id = world.flag("dana", declared=CHATTING, shows=LOL)
    code, out, err = _review(cli, world, str(flag_id), "--label", FORTNITE, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["verdict"] == "confirmed" and result["label"] == FORTNITE and result["clips_moved"] == 2
    assert world.flag_row(flag_id)["status"] == "open"
    assert {c["category"] for c in read_clips(world.data_dir, "live")} == {FORTNITE}
    assert _queue(cli, world) == []  # a flag with a verdict no longer awaits one
    # A second verdict on the same flag is refused and changes nothing.
    code, _, err = _review(cli, world, str(flag_id), "--label", "ok")
    assert code == 1 and len(err.strip().splitlines()) == 1 and "has a verdict already" in err
    assert world.flag_row(flag_id)["status"] == "open"


def test_gameplay_confirms_and_labels_the_frames_gameplay(cli, world):
    flag_id = world.flag("dana", declared=CHATTING, shows=LOL)
    code, _, err = _review(cli, world, str(flag_id), "--label", "gameplay")
    assert code == 0, err
    assert world.store.reviews()[0]["verdict"] == "confirmed"
    assert {c["category"] for c in read_clips(world.data_dir, "live")} == {"gameplay"}


def test_after_a_rejection_one_more_mismatch_does_not_reopen_the_flag(cli, world):
    flag_id = world.flag("dana", declared=CHATTING, shows=LOL)
    assert _review(cli, world, str(flag_id), "--label", "ok")[0] == 0
    world.check("dana", declared=CHATTING, shows=LOL)
    assert world.store.flags() == []  # the streak restarted: it takes `confirmations` mismatches again
    world.check("dana", declared=CHATTING, shows=LOL)
    assert [f["id"] for f in world.store.flags()] != [flag_id] and len(world.store.flags()) == 1


# -- verdicts on queued checks -----------------------------------------------------------------


def test_a_queued_check_of_no_flag_takes_a_verdict_by_its_id(cli, world):
    world.check("eve", declared=LOL, shows=FORTNITE)
    [queued] = read_clips(world.data_dir, "review")
    code, out, err = _review(cli, world, queued["clip_id"], "--label", FORTNITE)
    assert code == 0, err
    assert "queued check" in out and "confirmed" in out
    [live] = read_clips(world.data_dir, "live")
    assert live["category"] == FORTNITE and live["source"] == "reviewed" and live["declared_category"] == LOL
    assert world.store.reviews()[0]["clip_id"] == queued["clip_id"]
    assert world.store.reviewed_flag_counts() == {}  # no flag: not a flag's true or false positive


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["999", "live-20260101T000000-000000000000"])
def test_review_of_an_id_that_does_not_exist_exits_1_with_one_line(cli, world, target):
    world.flag("dana")
    code, out, err = _review(cli, world, target, "--label", "ok")
    assert code == 1 and out == ""
    [line] = err.strip().splitlines()
    assert "no flag 999" in line or "no queued check" in line
    assert len(read_clips(world.data_dir, "review")) == 2 and world.store.reviews() == []


@pytest.mark.parametrize("label", ["12345", "chatting", "<b>"])
def test_a_label_that_is_no_category_gameplay_or_ok_exits_2_and_changes_nothing(cli, world, label):
    flag_id = world.flag("dana")
    code, _, err = _review(cli, world, str(flag_id), "--label", label)
    assert code == 2
    [line] = err.strip().splitlines()
    assert "--label" in line and "watched category" in line
    assert world.flag_row(flag_id)["status"] == "open" and len(read_clips(world.data_dir, "review")) == 2


def test_an_id_without_a_label_is_a_usage_error(cli, world):
    code, _, err = _review(cli, world, "3")
    assert code == 2 and "give both ID and --label" in err


# -- the metric ------------------------------------------------------------------------------


def test_a_rejection_by_another_process_shows_on_the_daemons_metrics_as_a_false_positive(world):
    confirmed = world.flag("dana", declared=CHATTING, shows=LOL)
    rejected = world.flag("frank", declared=CHATTING, shows=LOL)
    metrics = Metrics()
    metrics.watch_categories(world.watch)
    daemon = types.SimpleNamespace(store=world.store, metrics=metrics)  # what refresh_open_flags reads
    server = metrics.serve("127.0.0.1", 0)
    try:
        for flag_id, label in ((confirmed, LOL), (rejected, "ok")):
            done = run_cli("review", str(flag_id), "--label", label, "--config", str(world.config_path))
            assert done.returncode == 0, done.stderr
        refresh_open_flags(daemon)  # what each cycle ends with
        text = requests.get(f"http://127.0.0.1:{server.port}/metrics", timeout=10).text
    finally:
        server.shutdown()
    assert f'twitchwatch_flags_rejected_total{{category="{CHATTING}"}} 1.0' in text
    assert f'twitchwatch_flags_confirmed_total{{category="{CHATTING}"}} 1.0' in text
    assert f'twitchwatch_flags_rejected_total{{category="{LOL}"}} 0.0' in text  # every watched category from 0
    assert f'twitchwatch_open_flags{{category="{CHATTING}"}} 1.0' in text  # the confirmed one stays open


def test_a_flag_spans_only_its_own_checks(world):
    # A clip of the same channel before the flag's run (another declared category) stays a queued check.
    world.check("dana", declared=LOL, shows=FORTNITE)
    flag_id = world.flag("dana", declared=CHATTING, shows=LOL)
    from monitor.review import ReviewDesk

    desk = ReviewDesk(world.cfg)
    try:
        items = desk.queue()
    finally:
        desk.close()
    assert [(i["kind"], len(i.get("clips", [None]))) for i in items] == [("flag", 2), ("check", 1)]
    assert items[0]["id"] == str(flag_id) and items[1]["declared_game_id"] == LOL


def test_the_store_refuses_a_second_verdict_on_one_flag(world):
    from monitor.errors import ReviewError
    from monitor.store import ReviewRow

    flag_id = world.flag("dana")
    row = ReviewRow(channel_id=world.flag_row(flag_id)["user_id"], declared_game_id=CHATTING, label=LOL,
                    verdict="confirmed", clips=0, flag_id=flag_id)
    world.store.record_review(row)
    with pytest.raises(ReviewError, match="has a verdict already"):
        world.store.record_review(row)
    assert len(world.store.reviews()) == 1


def test_observations_are_untouched_by_a_review(world, cli):
    flag_id = world.flag("dana")
    before = world.store.observations("dana")
    assert _review(cli, world, str(flag_id), "--label", "ok")[0] == 0
    assert world.store.observations("dana") == before


# -- a real check against the stand-in -------------------------------------------------------


@pytest.fixture
def lol_runtime(small_standin, tmp_path):
    """A Runtime on the stand-in whose model, a real SqueezeNet, says League of Legends whatever it sees."""
    rt = constant_model_runtime(small_standin, tmp_path, {LOL: 8.0})
    yield rt
    rt.close()


def test_a_flag_opened_by_real_checks_is_listed_with_the_clips_of_those_checks(lol_runtime):
    from monitor.check import check_stream
    from monitor.review import ReviewDesk
    from monitor.sim import small_scenario

    scenario = small_scenario()
    login = next(ch.login for ch in scenario.channels if ch.declared_game_id == CHATTING)
    stream = lol_runtime.helix.stream_of(login)
    results = [check_stream(lol_runtime.check_context, stream, lol_runtime.classifier()) for _ in range(2)]
    assert [r.outcome for r in results] == ["mismatch", "mismatch"] and results[1].flag_event.action == "open"
    desk = ReviewDesk(lol_runtime.cfg, store=lol_runtime.store)
    [item] = desk.queue()
    assert item["kind"] == "flag" and item["user_login"] == login
    # Each clip carries its observation's own time: that is how the flag finds them.
    checked = sorted(o["checked_at"] for o in lol_runtime.store.observations(login))
    assert sorted(c["checked_at"].replace("+00:00", "Z") for c in item["clips"]) == checked
    assert all(Image.open(c["contact_sheet"]).format == "PNG" for c in item["clips"])


def test_a_verdict_whose_frames_cannot_be_moved_records_nothing_and_can_be_given_again(cli, world):
    flag_id = world.flag("dana")
    world.data_dir.mkdir(parents=True, exist_ok=True)
    (world.data_dir / "live").write_text("a file where the live area's directory should be")
    code, out, err = _review(cli, world, str(flag_id), "--label", "ok")
    assert code == 1 and out == ""
    [line] = err.strip().splitlines()
    assert "cannot move queued check" in line and "run the review again" in line
    assert world.flag_row(flag_id)["status"] == "open" and world.store.reviews() == []
    assert len(read_clips(world.data_dir, "review")) == 2  # nothing lost
    (world.data_dir / "live").unlink()
    code, out, err = _review(cli, world, str(flag_id), "--label", "ok")
    assert code == 0, err
    assert world.flag_row(flag_id)["close_reason"] == "rejected"
    assert len(read_clips(world.data_dir, "live")) == 2 and read_clips(world.data_dir, "review") == []


@pytest.mark.parametrize("args", [("serve", "--label", "ok"), ("serve", "--json"), ("--port", "1"),
                                  ("--host", "127.0.0.1"), ("--label", "ok"), ("serve", "--port", "70000")])
def test_review_options_in_the_wrong_place_are_usage_errors(cli, world, args):
    code, out, err = _review(cli, world, *args)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
