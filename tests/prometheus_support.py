"""A real Prometheus for tests: started on a free port, scraping the targets given, stopped
after the block.

    with running_prometheus(["127.0.0.1:9464"], tmp_path) as prometheus:
        wait_for_target_up(prometheus)
        assert query_value(prometheus, "sum(orchestrator_deliberations_total)") == 3

The ``prometheus`` and ``promtool`` binaries come from the Debian package ``prometheus``,
which ``.ci/run`` installs; a test that needs them fails, never skips, when they are missing.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

WAIT_GUARD = 60.0
"""Seconds after which a wait for Prometheus fails the test instead of hanging."""
SCRAPE_INTERVAL = "1s"


def binary(name: str) -> str:
    """The path of ``prometheus`` or ``promtool``; fails the test when it is not installed."""
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} is not installed: the metrics tests scrape with a real Prometheus. Install the Debian "
            "package prometheus (apt-get install prometheus; .ci/run does)"
        )
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def running_prometheus(targets: Sequence[str], directory: Path) -> Iterator[str]:
    """A Prometheus scraping ``targets`` ("host:port", path /metrics) every second, its
    configuration and storage in ``directory``; yields its base URL ("http://127.0.0.1:PORT")."""
    config = directory / "prometheus.yml"
    config.write_text(
        json.dumps({  # YAML is a superset of JSON
            "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL},
            "scrape_configs": [{"job_name": "orchestrator", "static_configs": [{"targets": list(targets)}]}],
        }),
        encoding="utf-8",
    )
    port = free_port()
    log = directory / "prometheus.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [binary("prometheus"), f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=output, stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _ready(base) or _exited(process, log), f"Prometheus to be ready at {base}")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def api(base: str, path: str, **params: str) -> Any:
    """GET ``base`` + ``path`` (an /api/v1 endpoint); its ``data``."""
    url = f"{base}{path}?{urllib.parse.urlencode(params)}" if params else f"{base}{path}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]


def query(base: str, promql: str) -> list[dict[str, Any]]:
    """The instant vector ``promql`` evaluates to now."""
    data = api(base, "/api/v1/query", query=promql)
    assert data["resultType"] == "vector", data
    result: list[dict[str, Any]] = data["result"]
    return result


def query_value(base: str, promql: str) -> float | None:
    """The single value ``promql`` evaluates to; None when the vector is empty."""
    result = query(base, promql)
    assert len(result) <= 1, f"{promql} gave several series: {result}"
    return float(result[0]["value"][1]) if result else None


def wait_for_target_up(base: str) -> None:
    """Wait until every target has been scraped successfully."""

    def up() -> bool:
        targets = api(base, "/api/v1/targets")["activeTargets"]
        return bool(targets) and all(t["health"] == "up" for t in targets)

    _wait(up, "Prometheus to scrape its targets successfully")


def wait_for_value(base: str, promql: str, expected: float) -> float:
    """Wait until ``promql`` evaluates to ``expected``; the value it ended with."""
    _wait(lambda: query_value(base, promql) == expected, f"{promql} to be {expected}",
          lambda: f"it is {query_value(base, promql)}")
    return expected


def promtool_check_metrics(text: str) -> subprocess.CompletedProcess[str]:
    """``promtool check metrics`` on a scrape's text (its lint of names, types and help)."""
    return subprocess.run([binary("promtool"), "check", "metrics"], input=text, capture_output=True, text=True,
                          timeout=60, check=False)


def _ready(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _exited(process: subprocess.Popen[bytes], log: Path) -> bool:
    if process.poll() is not None:
        pytest.fail(f"prometheus exited with status {process.returncode}: {log.read_text(errors='replace')}")
    return False


def _wait(condition: Callable[[], bool], what: str, state: Callable[[], str] | None = None) -> None:
    deadline = time.monotonic() + WAIT_GUARD
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {WAIT_GUARD:g}s waiting for {what}" + (f"; {state()}" if state else ""))
        time.sleep(0.2)
