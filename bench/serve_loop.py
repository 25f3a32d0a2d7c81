"""The alert loop through `synap-play serve`, measured on the lab: from a fault to its alert resolved, and serve's
time from an alert received to its diagnosis recorded, beside the runbook's script.

Usage (from the repository root, after scripts/bootstrap, with the Docker engine running)::

    .venv/bin/python bench/serve_loop.py                 # 5 scenarios, 5 diagnosis rounds each (about 20 minutes)
    .venv/bin/python bench/serve_loop.py --scenarios worker-queue-backup --runs 3

For each scenario (the fault bench/run.py uses for it): ``synap-play lab reset``, the fault injected (with the
traffic its alert needs), one unmeasured ``synap-play <scenario> --check`` (it keeps the plan a first look reads,
as any earlier run of the scenario would), then:

1. **Diagnosis rounds.** A `synap-play serve` on a loopback port (out of the lab Alertmanager's reach) is posted
   the scenario's alert as Alertmanager posts it (labelled ``info``: P3, whose policy mitigates nothing, so the
   fault stays for the next round; its "resolved" follows, so each round is an incident of its own), and
   ``bench/baseline/<scenario>.sh`` runs, in alternating order. Measured: from the webhook's POST to the diagnosis
   recorded (serve's first look written into the incident's folder, complete, as serve's timings file notes it),
   against the script's wall time.
2. **The loop.** A `synap-play serve` where the lab's Alertmanager posts (the docker bridge, the lab's token), with
   the default severity policy. Measured from the injection (the lab's rules fire in seconds: their ``for:`` are
   the production ones / 60): the alert firing (its startsAt), delivered to serve, the diagnosis recorded, the
   mitigation done (what the policy held back is approved at once through serve's API, as a person would), the
   verification, and Alertmanager's "resolved" noted on the incident.

Output: Markdown tables on stdout and the data in bench/results/serve-<timestamp>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # noqa: E402  (bench/run.py: the lab helpers, the baseline, the summaries)

from synap_play.lab import access, faults, monitoring  # noqa: E402
from synap_play.lab.stack import Lab  # noqa: E402

# The alert each scenario's rounds post: one whose severity comes from its label (not pinned to P0 by
# playbooks/alerts.yml), so that "info" keeps the run from mitigating.
ROUND_ALERTS = {"high-error-rate": "HighErrorRate", "worker-queue-backup": "WorkerQueueBackup",
                "database-connection-failure": "PostgresConnectionLeak", "elevated-latency": "ElevatedLatency",
                "proposal-system-failure": "ProposalSystemFailure"}
EVENTS_WHILE_HUNG = 150  # as tests/lab/test_alerts.py: enough to queue past the lab's threshold of 100
WAIT = 300


class Serve:
    def __init__(self, listen: str, incidents: Path, log: Path, token_file: Path | None = None,
                 timings: Path | None = None):
        self.url = f"http://{listen}"
        self.incidents = incidents
        self.token = token_file.read_text().strip() if token_file else None
        argv = bench.synap_play("serve", "--listen", listen, "-i", "lab", "--incidents-dir", str(incidents),
                                "--operator", "bench")
        if token_file:
            argv += ["--token-file", str(token_file)]
        # serve's first look notes its moments (unix time, milliseconds) in the timings file when asked to.
        env = dict(os.environ, **({bench.TIMINGS_ENV: str(timings)} if timings else {}))
        with log.open("ab") as output:
            self.proc = subprocess.Popen(argv, cwd=bench.ROOT, stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                         env=env)
        self.log = log
        until(lambda: self._up(), 60, "serve listening")

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise bench.StepFailed(f"serve exited: {bench._last_line(self.log.read_text())}")
        try:
            return self.call("GET", "/healthz")[0] == 200
        except OSError:
            return False

    def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {self.token}"} if self.token else {})}
        request = urllib.request.Request(self.url + path, method=method, headers=headers,
                                         data=json.dumps(body).encode() if body is not None else None)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def incident(self, incident_id: str) -> dict:
        return self.call("GET", f"/api/incidents/{incident_id}")[1]

    def ended(self, incident_id: str) -> dict | None:
        shown = self.incident(incident_id)
        return shown if shown.get("state") == "ended" and shown.get("ended_at") else None

    def newest(self, scenario: str) -> str | None:
        recent = self.call("GET", "/api/incidents?last=50")[1].get("recent") or []
        return next((i["id"] for i in recent if i["scenario"] == scenario), None)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=90)


def until(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise bench.StepFailed(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.2)


def epoch(text: str | None) -> float | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None


def webhook(name: str, round_number: int, status: str = "firing") -> dict:
    """One alert as Alertmanager 0.25 posts it; a new startsAt and fingerprint each round: a new firing."""
    starts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    ends = "0001-01-01T00:00:00Z" if status == "firing" else starts
    return {"version": "4", "status": status, "receiver": "synap-play", "groupKey": f'{{}}:{{alertname="{name}"}}',
            "truncatedAlerts": 0, "groupLabels": {"alertname": name}, "commonLabels": {"alertname": name},
            "commonAnnotations": {}, "externalURL": "http://alertmanager:9093",
            "alerts": [{"status": status, "labels": {"alertname": name, "severity": "info"},
                        "annotations": {"summary": f"{name} (bench round {round_number})"}, "startsAt": starts,
                        "endsAt": ends, "generatorURL": "", "fingerprint": f"bench{round_number:011d}"}]}


def first_look_done(incidents: Path, incident_id: str, timings: Path) -> float | None:
    """The moment serve wrote the complete first look into the incident's folder (its timings line), or None."""
    try:
        look = json.loads((incidents / incident_id / "first-look.json").read_text())
        events = [json.loads(line) for line in timings.read_text().splitlines()]
    except (OSError, ValueError):
        return None
    if look.get("errors") or look.get("seconds") is None:
        return None
    done = [e["unix"] for e in events if e["event"] == "first_look_done"]
    return done[-1] if done else None


def one_round(serve: Serve, incidents: Path, timings: Path, name: str, round_number: int) -> dict:
    timings.unlink(missing_ok=True)  # one round's moments at a time
    posted = time.time()
    status, answer = serve.call("POST", "/api/alerts", webhook(ROUND_ALERTS[name], round_number))
    if status != 202 or not answer.get("queued"):
        raise bench.StepFailed(f"serve answered {status}: {answer}")
    incident_id = answer["queued"][0]["incident"]
    done = until(lambda: first_look_done(incidents, incident_id, timings), 60, "the diagnosis recorded")
    until(lambda: serve.ended(incident_id), WAIT, f"the run of {incident_id}")  # no overlap with the next round
    # The alert resolves, so that the next round's firing opens an incident of its own.
    serve.call("POST", "/api/alerts", webhook(ROUND_ALERTS[name], round_number, status="resolved"))
    return {"incident": incident_id, "diagnosis_seconds": round(done - posted, 3)}


def diagnosis_rounds(name: str, runs: int, workdir: Path) -> dict:
    incidents, timings = workdir / f"rounds-{name}", workdir / f"timings-{name}.jsonl"
    serve = Serve(f"127.0.0.1:{free_port()}", incidents, workdir / f"serve-rounds-{name}.log", timings=timings)
    served, baseline = [], []
    try:
        for round_number in range(runs):
            sides = ["serve", "baseline"] if round_number % 2 == 0 else ["baseline", "serve"]
            for side in sides:
                if side == "baseline":
                    baseline.append(bench.measure_baseline(name))
                    continue
                served.append(one_round(serve, incidents, timings, name, round_number))
            bench.say(f"{name}: round {round_number + 1}/{runs}: alert received -> diagnosis recorded "
                      f"{served[-1]['diagnosis_seconds']:.2f} s, runbook script {baseline[-1]['seconds']:.2f} s")
    finally:
        serve.stop()
    result = {"serve": served, "baseline": baseline,
              "received_to_diagnosis": bench.summary(r["diagnosis_seconds"] for r in served),
              "baseline_seconds": bench.summary(r["seconds"] for r in baseline)}
    result["ratio"] = bench.ratio(result["received_to_diagnosis"], result["baseline_seconds"])
    return result


def the_loop(name: str, lab: Lab, workdir: Path) -> dict:
    fault = faults.FAULTS[bench.SCENARIOS[name].fault]
    listen = f"{_gateway()}:{monitoring.webhook_url(bench.ROOT).rsplit(':', 1)[1].split('/')[0]}"
    incidents = workdir / f"loop-{name}"
    serve = Serve(listen, incidents, workdir / f"serve-loop-{name}.log",
                  token_file=lab.state_dir / "alertmanager" / monitoring.TOKEN_FILE)
    load = bench.BackgroundLoad()
    try:
        injected = time.time()
        bench.lab("inject", fault.name)
        if fault.traffic == "requests":
            load.start()
        elif fault.traffic == "events":
            access.send_events(faults.ai_requests(EVENTS_WHILE_HUNG))
        first_id = until(lambda: serve.newest(name), WAIT, f"{fault.alert} delivered to serve")
        first = until(lambda: serve.ended(first_id), WAIT, f"the run of {first_id}")
        last = first
        if first.get("pending_approval"):
            status, answer = serve.call("POST", f"/api/incidents/{first_id}/approvals/all",
                                        {"decision": "approve", "by": "bench"})
            if status != 202:
                raise bench.StepFailed(f"approval refused ({status}): {answer}")
            last = until(lambda: serve.ended(answer["run"]), WAIT, f"the approval run {answer['run']}")
        resolved = None
        try:
            resolved = until(lambda: next((epoch(n["at"]) for n in serve.incident(last["id"]).get("serve_notes") or []
                                           if n["event"] == "resolved"), None), 180, "the alert resolved")
        except bench.StepFailed as error:
            bench.say(f"{name}: {error}")
    finally:
        load.stop()
        serve.stop()
    alerts = [a for a in first.get("alerts") or [] if a.get("starts_at")]
    done = [epoch(a["at"]) for a in last.get("actions") or [] if a.get("status") == "done"]
    verification = last.get("verification") or {}
    moments = {
        "alert_firing": min(epoch(a["starts_at"]) for a in alerts) if alerts else None,
        "delivered": queued_at(first),
        "diagnosis_recorded": epoch((first.get("first_look") or {}).get("done_at")),
        "mitigation_done": max(done) if done else None,
        "verified": epoch(verification.get("at")),
        "alert_resolved": resolved,
    }
    return {"fault": fault.name, "alert": fault.alert, "severity": first.get("severity"),
            "approved": last is not first, "status": last.get("status"),
            "from_injection": {k: (round(v - injected, 1) if v else None) for k, v in moments.items()}}


def queued_at(shown: dict) -> float | None:
    """When serve received the webhook that opened the incident (its "queued" note)."""
    return epoch(next((n["at"] for n in shown.get("serve_notes") or [] if n["event"] == "queued"), None))


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _gateway() -> str:
    return subprocess.run(["docker", "network", "inspect", "bridge", "-f", "{{(index .IPAM.Config 0).Gateway}}"],
                          capture_output=True, text=True, check=True).stdout.strip()


def render(results: dict) -> str:
    rows = []
    for name, result in results["scenarios"].items():
        rounds = result.get("rounds") or {}
        rows.append([name, bench.spread(rounds.get("received_to_diagnosis")), bench.spread(rounds.get("baseline_seconds")),
                     f"{rounds['ratio']:.2f}×" if rounds.get("ratio") else "–"])
    table = bench.markdown_table(["scenario", "alert received → diagnosis recorded (serve)", "runbook script",
                                  "ratio"], rows)
    loop_rows = []
    for name, result in results["scenarios"].items():
        loop = result.get("loop") or {}
        moments = loop.get("from_injection") or {}
        loop_rows.append([name, f"{loop.get('alert', '–')} ({loop.get('severity', '–')})",
                          *(bench.number(moments.get(k), " s") for k in ("alert_firing", "delivered",
                                                                       "diagnosis_recorded", "mitigation_done",
                                                                       "verified", "alert_resolved")),
                          "yes" if loop.get("approved") else "no"])
    loop_table = bench.markdown_table(["scenario", "alert (severity)", "firing", "delivered", "diagnosed", "mitigated",
                                       "verified", "resolved", "approved via API"], loop_rows)
    return f"{table}\n\nSeconds from the fault's injection:\n\n{loop_table}\n"


def main(argv: list[str] | None = None) -> int:
    # The measured lab is the stand-in backend unless asked otherwise: its ten faults, and the timings the README's
    # tables were measured on.
    os.environ.setdefault("SYNAP_LAB_BACKEND", "standin")
    parser = argparse.ArgumentParser(prog="bench/serve_loop.py", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=bench.positive, default=5, help="diagnosis rounds per scenario (default 5)")
    parser.add_argument("--scenarios", type=bench.scenario_list, default=list(bench.SCENARIOS),
                        help="comma-separated scenarios (default all five)")
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    output = bench.RESULTS_DIR / f"serve-{started:%Y%m%dT%H%M%SZ}.json"
    results: dict = {"started_at": started.isoformat(timespec="seconds"), "machine": bench.machine(),
                     "runs": args.runs, "scenarios": {}}
    lab = Lab()
    with tempfile.TemporaryDirectory(prefix="synap-serve-bench-") as scratch:
        workdir = Path(scratch)
        os.environ["SYNAP_PLAY_CACHE_DIR"] = str(workdir / "cache")  # every scenario starts without a kept plan
        try:
            for name in args.scenarios:
                spec = bench.SCENARIOS[name]
                result = results["scenarios"][name] = {"fault": spec.fault}
                load = bench.BackgroundLoad()
                try:
                    bench.say(f"{name}: lab reset, inject {spec.fault}")
                    bench.lab("reset")
                    bench.lab("inject", spec.fault)
                    if spec.load:
                        load.start()
                    time.sleep(bench.SETTLE_SECONDS)
                    bench.measure_synap_play(name, "lab", workdir / "incidents")  # keeps the plan; not measured
                    result["rounds"] = diagnosis_rounds(name, args.runs, workdir)
                except Exception as error:
                    result["error"] = bench.one_line(error)
                    bench.say(f"{name}: {result['error']}")
                finally:
                    load.stop()
                try:
                    bench.say(f"{name}: the loop through Alertmanager and serve")
                    bench.lab("reset")
                    result["loop"] = the_loop(name, lab, workdir)
                    bench.say(f"{name}: {result['loop']}")
                except Exception as error:
                    result["loop_error"] = bench.one_line(error)
                    bench.say(f"{name}: {result['loop_error']}")
        except KeyboardInterrupt:
            bench.say("interrupted")
        finally:
            try:
                bench.lab("clear")
            except Exception as error:
                bench.say(f"lab clear: {bench.one_line(error)}")
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(render(results))
    bench.say(f"results written to {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
