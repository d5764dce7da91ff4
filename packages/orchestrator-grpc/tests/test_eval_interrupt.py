"""An evaluation stopped with SIGTERM stops the service it started, keeps and reports what
finished, and says how to go on."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

HANG_GUARD = 120.0


def _wait_for(condition: object, what: str) -> None:
    give_up = time.monotonic() + HANG_GUARD
    while not condition():  # type: ignore[operator]
        if time.monotonic() > give_up:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.1)


def test_sigterm_stops_the_run_and_its_service_and_keeps_what_finished(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("ORCH_")},
        # The sample plugin's agents answer with prose after a short delay: no code to run, so
        # each answer is judged at once and the run is long only because it has 164 problems.
        "ORCH_PLUGINS_ENABLED": "sample",
        "ORCH_DEFAULT_BACKEND": "sample-template",
        "ORCH_COUNCILS__DEV__OPTIONS__DELAY_SECONDS": "0.2",
        "ORCH_DRYRUN_WORK_ROOT": str(tmp_path / "work"),
    }
    command = [
        sys.executable, "-c", "import sys; from orchestrator_grpc.cli import main; sys.exit(main())",
        "eval", "humaneval", "--serve", "--arms", "single", "--out-dir", str(out),
        "--report", str(tmp_path / "EVAL.md"),
    ]
    results = out / "humaneval.jsonl"
    with subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) as process:
        try:
            _wait_for(lambda: results.exists() and results.read_text().count("\n") >= 2, "two results")
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=HANG_GUARD)
        finally:
            process.kill()
    assert process.returncode == 130, stderr[-2000:]
    assert "interrupted" in stderr
    assert "run the same command again to go on" in stderr

    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert 2 <= len(rows) < 164
    assert "| single | agents=1, rounds=0, top_k=0 |" in (tmp_path / "EVAL.md").read_text()
    runs = [json.loads(line) for line in (out / "humaneval-runs.jsonl").read_text().splitlines()]
    assert runs[-1]["rows"] == len(rows)

    log = (out / "humaneval-server.log").read_text()
    port = int(re.search(r"serving orchestrator\.v1\.OrchestratorService on 127\.0\.0\.1:(\d+)", log).group(1))
    assert "stopped" in log  # the service shut down on its own terms
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # nothing listens there any more
