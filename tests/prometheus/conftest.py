"""The session's real Prometheus and the APIs it scrapes (prometheus_lab.py)."""

from __future__ import annotations

import pytest
from prometheus_lab import Api, Prometheus


@pytest.fixture(scope="session")
def prom_lab(tmp_path_factory):
    """``(prometheus, {"busy": Api, "quiet": Api})`` with at least 8 s of scrapes of both in Prometheus."""
    busy, quiet = Api(), Api()
    quiet.serve(200, 0.03, 9)
    quiet.serve(503, 0.3, 1)
    busy.serve(200, 0.03, 1)  # its series exist from the first scrape on
    busy.serve(500, 0.7, 1)
    busy.drive()
    prometheus = Prometheus(tmp_path_factory.mktemp("prometheus"), {"busy": busy.address, "quiet": quiet.address})
    try:
        prometheus.wait_for('count(count_over_time(up{job=~"busy|quiet"}[1m]) >= 9) == 2',
                           "eight seconds of scrapes of both APIs")
        yield prometheus, {"busy": busy, "quiet": quiet}
    finally:
        prometheus.stop()
        busy.close()
        quiet.close()
