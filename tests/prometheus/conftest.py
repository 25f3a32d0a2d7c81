"""The session's real Prometheus and the APIs it scrapes (prometheus_lab.py)."""

from __future__ import annotations

import pytest
from prometheus_lab import Api, Prometheus


@pytest.fixture(scope="session")
def prom_lab(tmp_path_factory):
    """``(prometheus, {"busy": Api, "quiet": Api, "silent": Api})`` with at least 8 s of scrapes of each in
    Prometheus. silent declares its metrics and never records a sample, as Synap's real API does."""
    busy, quiet, silent = Api(), Api(), Api()
    quiet.serve(200, 0.03, 9)
    quiet.serve(503, 0.3, 1)
    busy.serve(200, 0.03, 1)  # its series exist from the first scrape on
    busy.serve(500, 0.7, 1)
    busy.drive()
    apis = {"busy": busy, "quiet": quiet, "silent": silent}
    prometheus = Prometheus(tmp_path_factory.mktemp("prometheus"), {name: api.address for name, api in apis.items()})
    try:
        prometheus.wait_for('count(count_over_time(up{job=~"busy|quiet|silent"}[1m]) >= 9) == 3',
                           "eight seconds of scrapes of each API")
        yield prometheus, apis
    finally:
        prometheus.stop()
        for api in apis.values():
            api.close()
