"""``orchestrator eval humaneval --serve`` on the real embedded model, as ``nox -s eval`` runs it.

A short run (two problems, one of them for the council arms, replies capped at a few dozen
tokens): what is asserted is the structure of what it writes, never a pass rate.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from orchestrator_grpc.evaluation.arms import ALL_ARMS

SANDBOX_UIDS = 100_000 + (os.getpid() % 50_000) * 8 + 4
"""Uids of this test's sandbox runs (the service's and the judge's, which share one work root)."""
RUN_SECONDS = 600


def test_a_short_run_on_the_embedded_model_writes_every_output(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith("ORCH_")},
        "ORCH_PLUGINS_ENABLED": "embedded,policy,lint,dryrun",
        "ORCH_EMBEDDED_CONTEXT_TOKENS": "2048",
        "ORCH_EMBEDDED_MAX_TOKENS": "48",
        "ORCH_QUORUM": "1",
        "ORCH_DRYRUN_SANDBOX_UID": str(SANDBOX_UIDS),
        "ORCH_DRYRUN_SANDBOX_UID_COUNT": "4",
        "ORCH_DRYRUN_WORK_ROOT": str(tmp_path / "work"),
    }
    command = [
        sys.executable, "-c", "import sys; from orchestrator_grpc.cli import main; sys.exit(main())",
        "eval", "humaneval", "--serve", "--problems", "0,2", "--deliberation-sample", "1", "--seed", "3",
        "--agents", "2", "--rounds", "1", "--out-dir", str(out), "--report", str(tmp_path / "EVAL.md"),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=RUN_SECONDS, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    rows = [json.loads(line) for line in (out / "humaneval.jsonl").read_text().splitlines()]
    cheap = [r for r in rows if r["arm"] in ("single", "best-of-n")]
    council = [r for r in rows if r["arm"] in ("council", "orchestrate")]
    assert sorted((r["number"], r["arm"]) for r in cheap) == [
        (0, "best-of-n"), (0, "single"), (2, "best-of-n"), (2, "single")
    ]
    assert len(council) == 2
    assert len({r["number"] for r in council}) == 1  # the sample of one
    for row in rows:
        assert row["status"] in ("answered", "no-answer"), row["error"]
        assert row["prompt_tokens"] > 0
        assert row["completion_tokens"] > 0
        assert any(model.startswith("embedded:") for model in row["models"]), row["models"]
        assert isinstance(row["hidden_passed"], bool)
        if row["status"] == "answered":
            assert row["final_code"]
            assert row["candidates"]
            assert row["candidates"][0]["rank"] == 1
    single = [r for r in rows if r["arm"] == "single"]
    assert all(len(r["candidates"]) == 1 for r in single)

    report = (tmp_path / "EVAL.md").read_text()
    for arm in ALL_ARMS:
        assert re.search(rf"^\| {re.escape(arm.value)} \| agents=\d", report, re.MULTILINE), arm
    assert "**Problems:** 2 of HumanEval's 164 (council and orchestrate on a fixed sample of 1" in report
    assert "embedded:" in report
    assert (out / "humaneval.png").read_bytes().startswith(b"\x89PNG")
    assert "serving" in (out / "humaneval-server.log").read_text().lower()
