# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The dispatch workers: take a call from the queue, make it, and apply the app's answer to its run.

Two forms. The simple one (the lab's Python worker): POST ``{event, events, ctx: {run_id, fn_id, attempt}}`` to
``<url>?fnId=&runId=``; 2xx completes the run, anything else retries it at once up to ``retries`` times, then fails it.

The SDK execution protocol (what the JS SDK's ``serve()`` answers, request version 1): POST to the function's runtime
URL with ``stepId`` set (``step``, or a planned step's hashed id) the body ::

    {"event", "events": [event], "steps": {hashed id: {"data": ...} | {"error": ...}},
     "ctx": {"fn_id", "run_id", "env", "step_id": "step", "attempt", "stack": {"stack": [hashed ids], "current"},
             "disable_immediate_execution", "use_api": false},
     "version": -1 until the SDK has named one in X-Inngest-Req-Version, "use_api": false}

and read the answer: 206 with a list of ops (StepRun/Step: the step's result, stored and the function called
again; StepError: the step is retried, and once its retries are spent the error is stored so the SDK throws it
into the function; StepPlanned: a call for that step alone), 200 (or any other 2xx) completes the run with the
body as its output, anything else is retried with backoff unless ``X-Inngest-No-Retry: true``, and then fails it.
``Retry-After`` sets when a retry happens. A 201 is a streamed answer: ``{status, headers, body}`` after spaces.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal
from email.utils import parsedate_to_datetime

from common import json_or_text, now, parse_time
from runs import Store

BACKOFF_CAP = 600.0  # seconds: the longest wait between two attempts unless the app asks for longer
RETRY_AFTER_CAP = 86400.0  # and the longest an app may ask for
# Ops the stand-in does not carry out; a run that asks for one fails with a message naming it.
UNSUPPORTED = {"Sleep": "step.sleep", "WaitForEvent": "step.waitForEvent", "InvokeFunction": "step.invoke",
               "AIGateway": "step.ai"}


class Answer:
    """What the app answered: status, lower-cased headers, raw body; status 0 when the call itself failed."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes, error: str | None = None):
        self.status, self.headers, self.body, self.error = status, headers, body, error

    def json(self) -> object:
        return json_or_text(self.body)


class Dispatcher:
    def __init__(self, store: Store, timeout: float, signing_key: str | None = None, backoff: float = 10.0):
        self.store = store
        self.timeout = timeout
        self.signing_key = signing_key
        self.backoff = backoff

    def work_forever(self) -> None:
        while (item := self.store.next_item()) is not None:
            try:
                if item["run"]["function"]["protocol"] == "sdk":
                    self.sdk_call(item)
                else:
                    self.simple_call(item)
            except Exception as exc:  # noqa: BLE001 - a bug in one call must not take a worker away for good
                with self.store.lock:
                    if item["run"]["status"] == "RUNNING":
                        self.store.end_locked(item["run"], "FAILED", {"error": f"stand-in error: {exc!r}"})

    # -- the simple form

    def simple_call(self, item: dict) -> None:
        run = item["run"]
        fn = run["function"]
        body = {"event": wire_event(run["event"]), "events": [wire_event(run["event"])],
                "ctx": {"run_id": run["id"], "fn_id": fn["id"], "attempt": run["attempt"] - 1}}
        url = with_query(fn["url"], {"fnId": fn["id"], "runId": run["id"]})
        answer = self.call(url, json.dumps(body).encode())
        note(run, f"attempt {run['attempt'] - 1}", answer)
        with self.store.lock:
            if run["status"] != "RUNNING":  # cancelled while in flight: the answer no longer counts
                return
            if 200 <= answer.status < 300:
                self.store.end_locked(run, "COMPLETED", answer.json())
            elif run["attempt"] <= fn["retries"]:
                run["status"] = "QUEUED"
                self.store.enqueue_locked(run, None)
            else:
                output = {"error": answer.error} if answer.error else {"error": f"HTTP {answer.status}",
                                                                     "body": answer.json()}
                self.store.end_locked(run, "FAILED", output)

    # -- the SDK execution protocol

    def sdk_call(self, item: dict) -> None:
        run = item["run"]
        with self.store.lock:
            if run["status"] != "RUNNING":
                return
            body = sdk_request(run, item)
        raw = canonical_json(body).encode()
        answer = self.call(with_query(run["function"]["url"], {"stepId": item["step"]}), raw, self.signature(raw))
        if answer.status == 201:
            answer = unstream(answer)
        note(run, f"stepId={item['step']} attempt {item['attempt']}", answer)
        with self.store.lock:
            if run["status"] != "RUNNING":  # cancelled, or ended by another call, while this one was in flight
                return
            version = answer.headers.get("x-inngest-req-version", "")
            if run["version"] == -1 and version.lstrip("-").isdigit():
                run["version"] = int(version)
            if answer.status == 206:
                ops = answer.json()
                if isinstance(ops, list) and all(isinstance(op, dict) and op.get("id") for op in ops):
                    self.apply_ops(run, item, ops, answer)
                    return
                answer = Answer(500, answer.headers, answer.body, "a 206 answer that is not a list of ops")
            if 200 <= answer.status < 300:
                self.store.end_locked(run, "COMPLETED", answer.json())
            else:
                self.retry_or_fail(run, item, answer)

    def apply_ops(self, run: dict, item: dict, ops: list[dict], answer: Answer) -> None:
        """Carry out a 206's ops (the store's lock held), as the real executor handles a generator response."""
        if len(ops) > 1:
            # Parallel steps: from now on the SDK must plan every step and run it only when asked (as the server does).
            run["force_plan"] = True
        for op in ops:
            code, step_id = op.get("op"), op["id"]
            if code in ("StepRun", "Step"):
                # StepRun data is wrapped so the SDK tells data from an error; the legacy Step op is stored as it came.
                self.save_step(run, step_id, {"data": op.get("data")} if code == "StepRun" else op.get("data"))
            elif code == "StepError":
                if not no_retry(answer) and item["attempt"] < run["function"]["retries"]:
                    self.store.enqueue_locked(run, item["step"], item["attempt"] + 1, self.delay(item["attempt"], answer))
                else:
                    self.save_step(run, step_id, {"error": op.get("error")})
            elif code == "StepPlanned":
                if step_id not in run["steps"]:
                    self.store.enqueue_locked(run, step_id, key=f"plan:{step_id}")
            elif code == "None":
                continue  # this thread of a parallel run has nothing more to do
            else:
                tool = UNSUPPORTED.get(code, f"the {code} op")
                self.store.end_locked(run, "FAILED", {"error": f"{tool} ({code}) is not supported by the lab's Inngest "
                                                               "stand-in", "op": op})
                return

    def save_step(self, run: dict, step_id: str, output: object) -> None:
        if step_id in run["steps"]:
            return  # a repeated answer for a step already stored (parallel calls may report it twice)
        run["steps"][step_id] = output
        run["stack"].append(step_id)
        # Then call the function again to find what comes after this step.
        self.store.enqueue_locked(run, "step", key=f"after:{step_id}")

    def retry_or_fail(self, run: dict, item: dict, answer: Answer) -> None:
        if not no_retry(answer) and item["attempt"] < run["function"]["retries"]:
            self.store.enqueue_locked(run, item["step"], item["attempt"] + 1, self.delay(item["attempt"], answer))
            return
        output = answer.json() if answer.status else {"error": answer.error}
        self.store.end_locked(run, "FAILED", output)

    def delay(self, attempt: int, answer: Answer) -> float:
        """Seconds before the next attempt: what ``Retry-After`` asks for, else exponential backoff."""
        asked = retry_after(answer.headers.get("retry-after"))
        if asked is not None:
            return asked
        return min(self.backoff * 2 ** min(attempt, 30), BACKOFF_CAP)

    def signature(self, raw: bytes) -> dict[str, str]:
        """``X-Inngest-Signature: t=<unix seconds>&s=<hex HMAC-SHA256 of body + t>``, keyed as the SDK checks it:
        the signing key without its ``signkey-<env>-`` prefix. Without a signing key nothing is signed (the dev
        server does not sign, and an SDK in dev mode checks nothing)."""
        if not self.signing_key:
            return {}
        stamp = str(int(time.time()))
        key = re.sub(r"^signkey-\w+-", "", self.signing_key).encode()
        mac = hmac.new(key, raw + stamp.encode(), hashlib.sha256).hexdigest()
        return {"X-Inngest-Signature": f"t={stamp}&s={mac}"}

    # -- HTTP

    def call(self, url: str, raw: bytes, headers: dict[str, str] | None = None) -> Answer:
        request = urllib.request.Request(url, data=raw, method="POST",
                                         headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return Answer(response.status, lower(response.headers), response.read())
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, lower(exc.headers), exc.read())
        except (OSError, ValueError) as exc:  # refused, reset, timed out: no answer at all
            return Answer(0, {}, b"", str(exc) or type(exc).__name__)


def note(run: dict, what: str, answer: Answer) -> None:
    """One line on stderr per call, beside the request log: which run, which call, what came back."""
    outcome = f"HTTP {answer.status}" if answer.status else f"no answer ({answer.error})"
    sys.stderr.write(f"call {run['function']['slug']} run {run['id']} {what}: {outcome}\n")


def sdk_request(run: dict, item: dict) -> dict:
    """The body of one call of the SDK execution protocol (the store's lock held: the run's state is copied)."""
    event = wire_event(run["event"])
    return {
        "event": event,
        "events": [event],
        "steps": dict(run["steps"]),
        "ctx": {
            "fn_id": run["function"]["internal_id"],
            "run_id": run["id"],
            "env": "",
            "step_id": "step",
            "attempt": item["attempt"],
            "stack": {"stack": list(run["stack"]), "current": len(run["stack"])},
            "disable_immediate_execution": run["force_plan"],
            "use_api": False,
        },
        "version": run["version"],
        "use_api": False,
    }


def wire_event(event: dict) -> dict:
    return {k: event[k] for k in ("id", "name", "data", "user", "ts")}


def with_query(url: str, values: dict[str, str]) -> str:
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    query.update(values)
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


def lower(headers) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()} if headers else {}


def no_retry(answer: Answer) -> bool:
    return answer.headers.get("x-inngest-no-retry", "").strip().lower() == "true"


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now: a number of seconds, an HTTP date or an RFC 3339 time."""
    if not value:
        return None
    value = value.strip()
    try:
        return min(max(0.0, float(value)), RETRY_AFTER_CAP)
    except ValueError:
        pass
    for parse in (parsedate_to_datetime, parse_time):
        try:
            return min(max(0.0, (parse(value) - now()).total_seconds()), RETRY_AFTER_CAP)
        except (TypeError, ValueError, IndexError):
            continue
    return None


def unstream(answer: Answer) -> Answer:
    """A streamed answer (201: spaces kept the connection alive, then ``{status, headers, body}``) as a plain one."""
    wrapped = answer.json()
    if not isinstance(wrapped, dict) or not isinstance(wrapped.get("status"), int):
        return Answer(500, answer.headers, answer.body, "a streamed answer without a status")
    headers = {**answer.headers, **lower(wrapped.get("headers") or {})}
    body = wrapped.get("body")
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return Answer(wrapped["status"], headers, raw)


def canonical_json(value: object) -> str:
    """JSON as the SDK re-serialises a parsed body to check its signature (RFC 8785: sorted keys, no spaces,
    JavaScript's number format), so the bytes signed are the bytes the SDK hashes."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{canonical_json(v)}"
                              for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(canonical_json(v) for v in value) + "]"
    if isinstance(value, float) and value == value and value not in (float("inf"), float("-inf")):
        return js_number(value)
    return json.dumps(value, ensure_ascii=False)


def js_number(value: float) -> str:
    """A float as JavaScript's ``Number.prototype.toString`` writes it (shortest round-trip digits)."""
    if value == 0:
        return "0"
    _sign, digits, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    text = "".join(map(str, digits))
    point = len(text) + exponent  # where the decimal point falls after the digits' first one, counted from the left
    minus = "-" if value < 0 else ""
    if len(text) <= point <= 21:
        return minus + text + "0" * (point - len(text))
    if 0 < point <= 21:
        return minus + text[:point] + "." + text[point:]
    if -6 < point <= 0:
        return minus + "0." + "0" * -point + text
    mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
    return f"{minus}{mantissa}e{'+' if point - 1 > 0 else '-'}{abs(point - 1)}"
