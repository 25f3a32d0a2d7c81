"""`synap-play serve`: Alertmanager's webhook receiver, running each firing scenario as `synap-play alert` does.

- ``cli.py``: the command, its options and the checks made before anything listens.
- ``app.py``: the HTTP routes (aiohttp): bearer token, size cap, the webhook, the incidents, health and metrics.
- ``intake.py``: what a webhook means: a new incident queued, a repeat or a resolution noted on an open one.
- ``runs.py``: the capped queue and the runs (one `synap-play alert` child process each), SIGTERM, restarts.
- ``incidents.py``: the incident records and serve's notes beside them, as the API and the intake read them.
- ``notes.py``: serve's own notes in an incident's folder (``alerts.jsonl``), never in the record itself.
- ``metrics.py``: the Prometheus series of /metrics.
"""
