"""The sandbox's isolation levels, the command it builds, and what it leaves behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from checks_support import strongest_isolation

from agents_contrib.checks.sandbox import (
    Isolation,
    SandboxUnavailable,
    detect_isolation,
    make_workdir,
    remove_workdir,
    rlimits,
    scrubbed_env,
)
from agents_contrib.checks.sandbox_run import RunOutcome
from agents_contrib.checks.settings import DryRunSettings


def test_auto_takes_a_working_level_and_describes_it() -> None:
    isolation = strongest_isolation()
    text = isolation.describe(DryRunSettings())
    assert text.startswith(f"isolation: {isolation.level}, ")
    assert "rlimits cpu 30s, as 1024MiB, fsize 16MiB, nofile 256, nproc 64" in text
    if isolation.network_isolated:
        assert "network namespace" in text
    else:
        assert "NO network namespace available" in text


def test_the_none_level_always_works_and_says_the_network_is_open(tmp_path: Path) -> None:
    isolation = detect_isolation(DryRunSettings(isolation="none", work_root=tmp_path))
    assert (isolation.level, isolation.network_isolated, isolation.pid_namespace) == ("none", False, False)
    assert "NO network namespace available" in isolation.describe(DryRunSettings())


def test_a_level_that_is_not_installed_is_refused_at_startup(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # neither bwrap nor unshare on it
    with pytest.raises(SandboxUnavailable, match="ORCH_DRYRUN_ISOLATION=bwrap"):
        detect_isolation(DryRunSettings(isolation="bwrap"))


@pytest.mark.skipif(os.geteuid() != 0, reason="the unprivileged user is taken only when running as root")
def test_as_root_the_code_runs_as_an_unprivileged_user_where_the_level_allows() -> None:
    isolation = strongest_isolation()
    if isolation.level != "bwrap":
        pytest.skip("only bwrap can expose an interpreter kept in root's home")
    assert isolation.uid == DryRunSettings().sandbox_uid
    assert isolation.process_limit_enforced


def test_the_environment_of_the_code_holds_nothing_of_the_services(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_OPENAI_API_KEY", "sk-secret-value")
    env = scrubbed_env(Path("/tmp/box"))
    assert sorted(env) == ["HOME", "LANG", "PATH", "PYTHONDONTWRITEBYTECODE", "PYTHONHASHSEED",
                           "PYTHONUNBUFFERED", "TMPDIR"]
    assert env["HOME"] == env["TMPDIR"] == "/tmp/box"
    assert "sk-secret-value" not in repr(env)


def test_limits_follow_the_settings() -> None:
    settings = DryRunSettings(cpu_seconds=3, memory_bytes=2**28, file_bytes=2**21, open_files=64, processes=8)
    assert rlimits(settings) == {"RLIMIT_CPU": 3, "RLIMIT_AS": 2**28, "RLIMIT_FSIZE": 2**21,
                                 "RLIMIT_NOFILE": 64, "RLIMIT_NPROC": 8, "RLIMIT_CORE": 0}


def test_the_bwrap_command_isolates_network_pids_and_the_filesystem() -> None:
    isolation = Isolation("bwrap", True, True, True, 65534, prefix=("bwrap", "--unshare-net", "--unshare-pid"),
                          exposed=("/root/.pyenv/versions/3.11",))
    command = isolation.command(Path("/tmp/a/box"), ["python", "-c", "pass"], DryRunSettings())
    text = " ".join(command)
    assert command[:3] == ["bwrap", "--unshare-net", "--unshare-pid"]
    assert "--ro-bind / /" not in text  # a new root, not the machine's
    assert "--ro-bind /usr /usr" in text
    assert "/run" not in text
    assert "/var" not in text
    assert "--dev /dev --proc /proc --tmpfs /tmp" in text
    assert "--perms 0755 --dir /root --perms 0755 --dir /root/.pyenv --perms 0755 --dir /root/.pyenv/versions" in text
    assert "--ro-bind /root/.pyenv/versions/3.11 /root/.pyenv/versions/3.11" in text
    assert "--perms 0755 --dir /tmp/a --bind /tmp/a/box /tmp/a/box --chdir /tmp/a/box --" in text
    assert command[-3:] == ["python", "-c", "pass"]


def test_workdirs_are_removed_whatever_the_code_did_to_them(tmp_path: Path) -> None:
    workdir = make_workdir(DryRunSettings(work_root=tmp_path), None)
    locked = workdir / "locked"
    locked.mkdir()
    (locked / "file").write_text("x")
    locked.chmod(0)
    remove_workdir(workdir)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("returncode", "name"),
    [(-24, "SIGXCPU"), (128 + 25, "SIGXFSZ"), (-9, "SIGKILL"), (0, ""), (1, ""), (None, "")],
)
def test_outcomes_name_the_signal_that_ended_them(returncode: int | None, name: str) -> None:
    assert RunOutcome(returncode, False, False, b"", b"", 0).signal_name == name


def test_output_keeps_its_head_and_tail() -> None:
    outcome = RunOutcome(0, False, False, b"head", b"tail", 100)
    assert outcome.output_text() == "head\n[... 92 of 100 bytes left out ...]\ntail"
    assert RunOutcome(0, False, False, b"all", b"", 3).output_text() == "all"


def test_output_shows_control_characters_written_out() -> None:
    raw = "\x1b]0;pwned\x07\x1b[2J ok\r\n\tindented\x7f\u009b".encode()
    assert RunOutcome(1, False, False, raw, b"", len(raw)).output_text() == (
        "\\x1b]0;pwned\\x07\\x1b[2J ok\\x0d\n\tindented\\x7f\\x9b"
    )
    cut = RunOutcome(1, False, False, b"\x1b[2J", b"\x07", 100).output_text()
    assert cut == "\\x1b[2J\n[... 95 of 100 bytes left out ...]\n\\x07"
