"""The review page in a real headless browser: Debian's chromium through chromedriver, driven by selenium.

Load the page served by `twitchwatch review serve`, see the contact sheet
drawn, click reject, and find the flag closed in the database. Without
chromium the test is skipped, saying how to install it; under CI (`CI` set,
as .ci/run does, and .ci/run installs chromium) it fails instead.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from review_helpers import CHATTING, LOL, ReviewWorld

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL = "apt-get install chromium chromium-driver"


def _need_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not (os.path.exists(p) and os.access(p, os.X_OK))]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[dev]')")
    if missing:
        message = f"the browser test needs {', '.join(missing)}: {INSTALL}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def browser(tmp_path):
    _need_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,1600", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(120)
    yield driver
    driver.quit()


@pytest.fixture
def served(tmp_path):
    """A review queue with one open flag, and `twitchwatch review serve --port 0` on it in its own process."""
    world = ReviewWorld(tmp_path, f"sqlite:///{tmp_path / 'tw.db'}")
    flag_id = world.flag("dana", declared=CHATTING, shows=LOL)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWITCHWATCH_", "TWITCH_"))}
    proc = subprocess.Popen([sys.executable, "-m", "monitor", "review", "serve", "--port", "0",
                             "--config", str(world.config_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()  # "review page at http://127.0.0.1:PORT/ (Ctrl-C to stop)"
        assert line.startswith("review page at http://127.0.0.1:"), (line, proc.stderr.read() if proc.poll() else "")
        yield world, flag_id, line.split()[3]
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err  # SIGTERM stops it cleanly
        finally:
            if proc.poll() is None:
                proc.kill()
                print("STDERR", proc.communicate()[1][-3000:])
            world.close()


def test_in_chromium_the_page_shows_the_contact_sheet_and_reject_closes_the_flag(browser, served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    world, flag_id, url = served
    browser.get(url)
    article = browser.find_element(By.ID, f"flag-{flag_id}")
    assert "dana" in article.text and "Just Chatting" in article.text and "League of Legends" in article.text
    sheets = article.find_elements(By.CSS_SELECTOR, "img.sheet")
    assert len(sheets) == 2
    # Decoded and drawn by the browser: a broken image has naturalWidth 0.
    WebDriverWait(browser, 60).until(lambda d: all(
        d.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) for img in sheets))
    assert browser.execute_script("return arguments[0].naturalWidth", sheets[0]) > 300
    assert article.find_element(By.LINK_TEXT, "dana").get_attribute("href") == "https://www.twitch.tv/dana"

    article.find_element(By.CSS_SELECTOR, "button.reject").click()
    WebDriverWait(browser, 60).until(expected_conditions.presence_of_element_located((By.ID, "notice")))
    assert browser.find_elements(By.ID, f"flag-{flag_id}") == []  # back on the page, the flag is gone from it
    assert "No open flag awaits a verdict" in browser.page_source
    flag = world.flag_row(flag_id)
    assert flag["status"] == "closed" and flag["close_reason"] == "rejected"

