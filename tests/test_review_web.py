"""The review web page over HTTP: escaping, the CSRF token, POST-redirect-GET, the contact sheets."""

from __future__ import annotations

import re
import threading

import pytest
import requests
from review_helpers import CHATTING, LOL, ReviewWorld

from monitor.retain import read_clips
from monitor.review import ReviewDesk
from monitor.review_web import ReviewServer

HOSTILE = '<script>alert("x")</script>'


@pytest.fixture
def world(tmp_path):
    w = ReviewWorld(tmp_path, f"sqlite:///{tmp_path / 'tw.db'}")
    yield w
    w.close()


@pytest.fixture
def page(world):
    """A review server on a free port of 127.0.0.1, in a thread."""
    desk = ReviewDesk(world.cfg)
    server = ReviewServer(desk, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)
    desk.close()


def _token(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_the_page_shows_each_open_flag_with_its_contact_sheets_and_a_link_to_the_stream(world, page):
    flag_id = world.flag("dana", declared=CHATTING, shows=LOL)
    answer = requests.get(page.url, timeout=10)
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/html")
    assert "script-src" not in answer.headers["Content-Security-Policy"]  # default-src 'none': no script at all
    html = answer.text
    assert f'id="flag-{flag_id}"' in html and 'href="https://www.twitch.tv/dana"' in html
    assert "Just Chatting" in html and "League of Legends" in html and "93%" in html
    sheets = re.findall(r'<img class="sheet" src="(/sheet/[^"]+\.png)"', html)
    assert len(sheets) == 2
    image = requests.get(page.url.rstrip("/") + sheets[0], timeout=10)
    assert image.status_code == 200 and image.headers["Content-Type"] == "image/png"
    assert image.content.startswith(b"\x89PNG")


def test_everything_from_helix_is_escaped(world, page):
    world.flag(HOSTILE, declared=CHATTING, shows=LOL, declared_name=f"Just {HOSTILE} Chatting")
    world.store.upsert_categories({LOL: f"League {HOSTILE}"})
    html = requests.get(page.url, timeout=10).text
    assert "<script" not in html
    assert html.count("&lt;script&gt;") >= 3  # the login, the declared and the predicted category names
    assert "twitch.tv/&lt;" not in html and 'href="https://www.twitch.tv/<' not in html  # no link from a bad login


@pytest.mark.parametrize("token", [None, "", "forged"])
def test_a_post_without_this_pages_token_is_refused_and_changes_nothing(world, page, token):
    flag_id = world.flag("dana")
    form = {"id": str(flag_id), "label": "ok"}
    if token is not None:
        form["csrf"] = token
    answer = requests.post(page.url + "review", data=form, allow_redirects=False, timeout=10)
    assert answer.status_code == 403
    assert world.flag_row(flag_id)["status"] == "open" and world.store.reviews() == []
    assert len(read_clips(world.data_dir, "review")) == 2 and read_clips(world.data_dir, "live") == []


def test_a_post_with_the_token_records_the_verdict_and_redirects_to_the_page(world, page):
    flag_id = world.flag("dana")
    token = _token(requests.get(page.url, timeout=10).text)
    answer = requests.post(page.url + "review", data={"csrf": token, "id": str(flag_id), "label": "ok"},
                           allow_redirects=False, timeout=10)
    assert answer.status_code == 303 and answer.headers["Location"].startswith("/?")
    flag = world.flag_row(flag_id)
    assert flag["status"] == "closed" and flag["close_reason"] == "rejected"
    after = requests.get(page.url + answer.headers["Location"].lstrip("/"), timeout=10).text
    assert f'id="flag-{flag_id}"' not in after and "rejected" in after
    # The same form again (a stale tab): refused, not recorded twice.
    again = requests.post(page.url + "review", data={"csrf": token, "id": str(flag_id), "label": "ok"},
                          allow_redirects=False, timeout=10)
    assert again.status_code == 409 and len(world.store.reviews()) == 1


def test_another_server_run_has_another_token(world, page):
    other = ReviewServer(ReviewDesk(world.cfg), "127.0.0.1", 0)
    try:
        assert other.csrf_token != page.csrf_token
    finally:
        other.server_close()
        other.desk.close()


@pytest.mark.parametrize("path", ["/sheet/..%2F..%2Freview.toml.png", "/sheet/nothing.png", "/../review.toml",
                                  "/sheet/live-20260101T000000-000000000000.png"])
def test_only_queued_clips_sheets_are_served(world, page, path):
    world.flag("dana")
    answer = requests.get(page.url.rstrip("/") + path, timeout=10)
    assert answer.status_code == 404
