"""The incident pages in a real browser (Debian's headless chromium through its chromedriver, driven by selenium),
on a real incident from the lab: a worker-queue-backup run at P3 holds its mitigations back for approval; serve
picks its record up; the page shows the findings; approving the first waiting step with the page's button runs it
(planned again, as through the API) and the approval run's page then shows it done.

With SYNAP_PLAY_SCREENSHOTS=<folder> the list and the incident page are saved there (the README's pictures).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from labtools import ROOT, SYNAP_PLAY, cli, play

pytestmark = pytest.mark.lab
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
TOKEN = "incident-page-token-4821"
WAIT = 240


@pytest.fixture
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("no chromium and chromedriver (scripts/bootstrap installs Debian's)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1400"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def held_incident(lab, tmp_path):
    """A worker-queue-backup incident at P3 whose mitigations wait for approval, and serve over its folder (its URL,
    the record, serve's log)."""
    incidents = tmp_path / "incidents"
    cli("reset")
    cli("inject", "worker-stuck")
    time.sleep(6)  # past the lab's stuck-run threshold
    _code, record = play("worker-queue-backup", "--severity", "P3", incidents=incidents)
    assert record["status"] == "needs approval", json.dumps(record, indent=1)[:3000]
    token_file = tmp_path / "serve.token"
    token_file.write_text(TOKEN)
    token_file.chmod(0o600)
    port = free_port()
    serve = subprocess.Popen([*SYNAP_PLAY, "serve", "--listen", f"127.0.0.1:{port}", "--token-file", str(token_file),
                              "-i", "lab", "--incidents-dir", str(incidents)], cwd=ROOT, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=(tmp_path / "serve.log").open("w"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                break
        except OSError:
            if time.monotonic() > deadline or serve.poll() is not None:
                raise AssertionError((tmp_path / "serve.log").read_text()[-2000:]) from None
            time.sleep(0.3)
    yield url, record, tmp_path / "serve.log"
    serve.terminate()
    serve.wait(timeout=60)
    if "worker-stuck" in cli("status"):
        cli("clear", "worker-stuck")


def shoot(driver, name: str) -> None:
    folder = os.environ.get("SYNAP_PLAY_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def test_approving_a_step_in_the_page_runs_it_and_the_page_then_shows_it_done(browser, held_incident):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    url, record, serve_log = held_incident
    browser.get(f"{url}/incidents/{record['id']}")
    assert "/login" in browser.current_url  # the token first
    browser.find_element(By.ID, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    WebDriverWait(browser, 30).until(ready.url_contains(f"/incidents/{record['id']}"))
    # The incident's page, not whatever else the browser shows (what it shows instead is the failure's message).
    try:
        heading = WebDriverWait(browser, 30).until(ready.presence_of_element_located((By.ID, "findings")))
    except TimeoutException:
        raise AssertionError(f"no findings on {browser.current_url}: {browser.find_element(By.TAG_NAME, 'body').text!r}"
                             f"\nserve's log: {serve_log.read_text()[-2000:]}") from None

    findings = heading.find_element(By.XPATH, "..").text
    for finding in record["findings"][:3]:
        assert finding["summary"].split(":")[0] in findings
    first_step = browser.find_element(By.CSS_SELECTOR, "section[aria-labelledby=approvals] article h3").text  # "Step 1: <task>"
    task = first_step.split(": ", 1)[1]
    shoot(browser, "incident-page")

    browser.find_element(By.CSS_SELECTOR, "button.approve").click()
    WebDriverWait(browser, 30).until(lambda driver: "approval run" in driver.page_source)
    run_url = browser.current_url.split("?")[0]
    assert run_url != f"{url}/incidents/{record['id']}"

    def step_done(driver) -> bool:
        driver.get(run_url)  # what the page's own refresh does every few seconds
        rows = driver.find_elements(By.CSS_SELECTOR, "section[aria-labelledby=actions] tbody tr")
        return any(task in row.text and "done" in row.text for row in rows)

    WebDriverWait(browser, WAIT, poll_frequency=3).until(step_done)
    browser.get(f"{url}/incidents")
    assert record["id"] in browser.page_source
    shoot(browser, "incident-list")
