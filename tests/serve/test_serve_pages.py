"""The incident pages of synap-play serve, read as a browser without JavaScript reads them: the list (open first,
the escalation level reached by now), an incident's page (phases, findings, actions, verification, the step
waiting for approval with its buttons, the post-mortem draft), the form that approves a step (planned again, as
through the API), the token kept in a cookie by the sign-in page, and everything shown escaped. A real browser
drives the same pages in tests/lab/test_incident_page.py."""

from __future__ import annotations

import http.cookiejar
import urllib.error
import urllib.parse
import urllib.request

import pytest

pytestmark = pytest.mark.slow

def browser():
    """A cookie-keeping opener that follows redirects, as a browser does (no JavaScript)."""
    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


def open_page(opener, url: str, form: dict | None = None, token: str | None = None) -> tuple[int, str, str]:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with opener.open(request, timeout=30) as response:
            return response.status, response.geturl(), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.geturl(), exc.read().decode()


def test_the_pages_ask_for_the_token_once_and_keep_it_in_a_cookie(held):
    serve, incident_id = held
    opener = browser()
    status, url, page = open_page(opener, f"{serve.url}/incidents/{incident_id}")
    assert status == 200 and "/login?next=" in url and 'type="password"' in page
    status, _url, page = open_page(opener, f"{serve.url}/login", {"token": "wrong", "next": "/incidents"})
    assert status == 401 and "Wrong token." in page
    status, url, page = open_page(opener, f"{serve.url}/login", {"token": serve.token, "next": f"/incidents/{incident_id}"})
    assert status == 200 and url.endswith(f"/incidents/{incident_id}") and incident_id in page
    # Only a path of this server is where the sign-in leads.
    status, url, _page = open_page(opener, f"{serve.url}/login", {"token": serve.token, "next": "//elsewhere.invalid/x"})
    assert url.endswith("/incidents")


def test_the_list_and_the_page_show_the_incident_and_its_waiting_step(held):
    serve, incident_id = held
    status, _url, listing = open_page(browser(), f"{serve.url}/incidents", token=serve.token)
    assert status == 200 and f'href="/incidents/{incident_id}"' in listing
    # The fixture's alert started long ago: by now the incident has reached the ladder's last rung.
    assert 'class="open"' in listing and "level 4 (CTO/VP Engineering)" in listing
    status, _url, page = open_page(browser(), f"{serve.url}/incidents/{incident_id}", token=serve.token)
    assert status == 200
    for shown in ("Waiting for approval", "Step 1: Mitigate | Create the flag file", "Approve step 1",
                  "Decline step 1", f'action="/incidents/{incident_id}/approvals/1"', "The runbook's seven phases",
                  "Acknowledge", "Document", "Findings", "Verification", "Post-mortem draft", "needs approval"):
        assert shown in page, shown
    assert "<script" not in page  # no JavaScript needed, none sent


def test_approving_in_the_page_runs_the_step_planned_again_and_the_page_then_shows_it_done(held, tmp_path):
    serve, incident_id = held
    status, url, page = open_page(browser(), f"{serve.url}/incidents/{incident_id}/approvals/1",
                                  {"decision": "approve", "by": "<b>team lead</b>"}, token=serve.token)
    assert status == 200, page
    run_id = url.split("/incidents/")[1].split("?")[0]
    assert run_id != incident_id and "approval run" in page
    assert "&lt;b&gt;team lead&lt;/b&gt;" in page and "<b>team lead</b>" not in page  # escaped
    run = serve.wait_for_record(run_id)
    assert run["status"] == "resolved" and (tmp_path / "flag").read_text() == "flag raised\n"
    _status, _url, page = open_page(browser(), f"{serve.url}/incidents/{run_id}", token=serve.token)
    assert "done" in page and "Mitigate | Create the flag file" in page and "resolved" in page
    _status, _url, page = open_page(browser(), f"{serve.url}/incidents/{incident_id}", token=serve.token)
    assert "Nothing waits for approval." in page


def test_a_wrong_decision_or_step_is_a_page_saying_why(held):
    serve, incident_id = held
    status, _url, page = open_page(browser(), f"{serve.url}/incidents/{incident_id}/approvals/9",
                                   {"decision": "approve", "by": "lead"}, token=serve.token)
    assert status == 404 and "no step &#39;9&#39; waits for approval" in page
    status, _url, page = open_page(browser(), f"{serve.url}/incidents/{incident_id}/approvals/1",
                                   {"decision": "maybe", "by": "lead"}, token=serve.token)
    assert status == 400 and "must be" in page
    status, _url, page = open_page(browser(), f"{serve.url}/incidents/20990101T000000Z-fixture-flag-abcdef", token=serve.token)
    assert status == 404 and "no incident" in page
