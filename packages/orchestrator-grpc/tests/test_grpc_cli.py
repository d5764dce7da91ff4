"""The ``orchestrator`` command, run as real processes: ``serve`` on a free port, the client
commands against it (stopping it by a signal: test_grpc_cli_stop.py)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_support import PLUGIN_NAME, Served, cli_environment, run, start_server
from grpc_test_support import HANG_GUARD, orchestrator_command

# What the test plugin's ``hostile`` agents reply.
HOSTILE_REPLY = "\x1b]0;pwned\x07\n\x1b[2J\n[link=http://x]click[/link]\n[bold red]loud[/bold red]\u009b"


@pytest.fixture(scope="module")
def environment(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Process environment with the test plugin installed (a dist-info on PYTHONPATH)."""
    return cli_environment(tmp_path_factory)


@pytest.fixture(scope="module")
def served(environment: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    server = start_server(environment, tmp_path_factory.mktemp("log") / "serve.log")
    yield server
    server.process.kill()
    server.process.wait()


def test_health_exits_0_when_serving(environment: dict[str, str], served: Served) -> None:
    result = run(environment, "health", "--address", served.address)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"server at {served.address}: SERVING\n"

    result = run(environment, "health", "--address", served.address, "--service", "orchestrator.v1.OrchestratorService")
    assert result.returncode == 0, result.stderr


def test_health_of_an_unknown_service_or_an_unreachable_server_fails(
    environment: dict[str, str], served: Served
) -> None:
    unknown = run(environment, "health", "--address", served.address, "--service", "no.such.Service")
    assert unknown.returncode == 3
    assert unknown.stderr == f"unknown service 'no.such.Service' at {served.address}\n"

    unreachable = run(environment, "health", "--address", "127.0.0.1:1", "--timeout", "2")
    assert unreachable.returncode == 2
    assert unreachable.stderr.startswith("unreachable: 127.0.0.1:1: ")
    assert unreachable.stderr.count("\n") == 1


def test_status_prints_json(environment: dict[str, str], served: Served) -> None:
    result = run(environment, "status", "--address", served.address)
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["status"] == "SERVING"
    assert [p["name"] for p in status["plugins"]] == [PLUGIN_NAME]
    dev = next(c for c in status["councils"] if c["role"] == "DEV")
    assert (dev["backend"], dev["agents"], dev["ready"]) == ("scripted", 2, True)


def test_deliberate_streams_then_prints_ranked_results(environment: dict[str, str], served: Served) -> None:
    as_json = run(environment, "deliberate", "--address", served.address, "--role", "dev", "--task", "Add", "--json")
    assert as_json.returncode == 0, as_json.stderr
    response = json.loads(as_json.stdout)
    assert [r["rank"] for r in response["results"]] == [1, 2]
    assert response["results"][0]["checks"]["lint"]["name"] == "lint"

    shown = run(environment, "deliberate", "--address", served.address, "--role", "DEV", "--task", "Add")
    assert shown.returncode == 0, shown.stderr
    assert "dev-1-v1" in shown.stdout
    assert "Proposal by dev-1 for: Add" in shown.stdout
    assert "ranked" in shown.stderr  # the live display's last state


def test_deliberate_with_tests_and_orchestrate(environment: dict[str, str], served: Served, tmp_path: Path) -> None:
    test_file = tmp_path / "test_add.py"
    test_file.write_text("def test_add():\n    assert True\n")
    result = run(
        environment, "deliberate", "--address", served.address, "--role", "DEV", "--task", "Add",
        "--tests", str(test_file), "--orchestrate", "--json",
    )
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["selected_by"] == "score"  # no ARCHITECT council is ready on this server
    assert response["winner"]["rank"] == 1


def test_json_is_the_response_the_server_sent(environment: dict[str, str], served: Served) -> None:
    """Not the CLI's own rendering of it: the role as the server names it (in capitals), and
    the same response the server keeps in the deliberation's record."""
    streamed = run(environment, "deliberate", "--address", served.address, "--role", "dev", "--task", "Add", "--json")
    assert streamed.returncode == 0, streamed.stderr
    response = json.loads(streamed.stdout)
    assert response["role"] == "DEV"
    kept = run(environment, "deliberations", "show", "--address", served.address, response["deliberation_id"])
    assert json.loads(kept.stdout)["response"] == response

    chosen = run(environment, "orchestrate", "--address", served.address, "--role", "dev", "--task", "Add", "--json")
    assert chosen.returncode == 0, chosen.stderr
    orchestration = json.loads(chosen.stdout)
    assert orchestration["deliberation"]["role"] == "DEV"
    kept = run(environment, "deliberations", "show", "--address", served.address, orchestration["deliberation_id"])
    assert json.loads(kept.stdout)["orchestration"] == orchestration


def test_deliberate_errors_are_one_line_with_the_status_code(environment: dict[str, str], served: Served) -> None:
    result = run(environment, "deliberate", "--address", served.address, "--role", "DEV", "--task", " ")
    assert result.returncode == 1
    assert result.stderr.startswith(f"orchestrator: {served.address}: INVALID_ARGUMENT: task is required")
    assert result.stderr.count("\n") == 1


def test_deliberations_list_and_show(environment: dict[str, str], served: Served) -> None:
    created = run(environment, "deliberate", "--address", served.address, "--role", "DEV", "--task", "Add", "--json")
    deliberation_id = json.loads(created.stdout)["deliberation_id"]

    listed = run(environment, "deliberations", "list", "--address", served.address, "--json", "--page-size", "1")
    assert listed.returncode == 0, listed.stderr
    page = json.loads(listed.stdout)
    assert [r["deliberation_id"] for r in page["deliberations"]] == [deliberation_id]
    assert page["next_page_token"]

    shown = run(environment, "deliberations", "show", "--address", served.address, deliberation_id)
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert (record["deliberation_id"], record["status"]) == (deliberation_id, "DELIBERATION_STATUS_SUCCEEDED")

    missing = run(environment, "deliberations", "show", "--address", served.address, "nope")
    assert missing.returncode == 1
    assert "NOT_FOUND" in missing.stderr


def test_without_a_viable_proposal_the_cli_says_so_plainly(environment: dict[str, str], served: Served) -> None:
    shown = run(environment, "deliberate", "--address", served.address, "--role", "DEV", "--task", "gibberish")
    assert shown.returncode == 0, shown.stderr  # a deliberation ranks; it does not choose
    assert "no viable proposal: none of the 2 proposal(s) passed its checks" in shown.stdout
    assert "viable" in shown.stdout.splitlines()[1]  # the table's header marks viability
    assert "(NOT viable)" in shown.stdout

    ok = run(environment, "deliberate", "--address", served.address, "--role", "DEV", "--task", "Add")
    assert "2 of 2 proposal(s) viable" in ok.stdout

    chosen = run(
        environment, "deliberate", "--address", served.address, "--role", "DEV", "--task", "gibberish",
        "--orchestrate",
    )
    assert chosen.returncode == 1
    assert f"{served.address}: FAILED_PRECONDITION: no viable proposal: no proposal passed its checks" in chosen.stderr

    listed = run(environment, "deliberations", "list", "--address", served.address, "--json", "--page-size", "1")
    [record] = json.loads(listed.stdout)["deliberations"]
    assert record["error_kind"] == "NoViableProposal"
    shown = run(environment, "deliberations", "show", "--address", served.address, record["deliberation_id"])
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["response"]["viable_proposals"] == 0
    assert "failed (NoViableProposal)" in shown.stderr
    assert "no viable proposal: none of the 2 proposal(s) passed its checks" in shown.stderr
    assert "dev-1: scripted (the backend does not say what it runs)" in shown.stderr


def test_plugins_prints_loaded_and_failed_plugins_as_json(environment: dict[str, str]) -> None:
    result = run(environment, "plugins")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "plugins": [
            {
                "name": PLUGIN_NAME,
                "version": "0.0.1",
                "hooks": ["register_agents", "register_checks"],
                "agents": ["scripted", "gate", "hostile"],
                "checks": ["lint", "sense"],
            }
        ],
        "failed_plugins": [],  # as GetStatus names them
        "failed": [],  # the same, under its former name
    }


def run_into_a_closed_pipe(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run with a stdout whose reader is gone (as with ``| head -1`` once head has exited)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        return subprocess.run(
            [orchestrator_command(), *args], env=env, stdout=write_end, stderr=subprocess.PIPE, text=True,
            timeout=HANG_GUARD * 3, check=False,
        )
    finally:
        os.close(write_end)


@pytest.mark.parametrize(
    "command",
    [["status"], ["deliberations", "list", "--json"], ["deliberations", "list"],
     ["deliberate", "--role", "DEV", "--task", "Add"], ["plugins"]],
    ids=" ".join,
)
def test_a_closed_stdout_ends_the_command_quietly_with_141(
    environment: dict[str, str], served: Served, command: list[str]
) -> None:
    address = [] if command == ["plugins"] else ["--address", served.address]
    result = run_into_a_closed_pipe(environment, *address, *command)
    assert result.returncode == 141, result.stderr
    stderr = result.stderr if command[0] != "deliberate" else result.stderr.rpartition("┘")[2]
    assert stderr.strip() == ""  # deliberate's live display (on stderr) ends; nothing after it


CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def test_model_text_is_shown_inert(environment: dict[str, str], served: Served) -> None:
    shown = run(environment, "deliberate", "--address", served.address, "--role", "HOSTILE", "--task", "Add")
    assert shown.returncode == 0, shown.stderr
    assert not CONTROL.search(shown.stdout), shown.stdout
    assert not CONTROL.search(shown.stderr.replace("\r", "")), shown.stderr  # rich's live display may use CR
    for line in ("\\x1b]0;pwned\\x07", "\\x1b[2J", "[link=http://x]click[/link]", "[bold red]loud[/bold red]\\x9b"):
        assert line in shown.stdout  # written out, markup as it is written

    chosen = run(environment, "orchestrate", "--address", served.address, "--role", "HOSTILE", "--task", "Add")
    assert chosen.returncode == 0, chosen.stderr
    assert not CONTROL.search(chosen.stdout), chosen.stdout
    assert "[link=http://x]click[/link]" in chosen.stdout
    assert "\\x1b]0;pwned\\x07" in chosen.stdout

    exact = run(environment, "deliberate", "--address", served.address, "--role", "HOSTILE", "--task", "Add", "--json")
    response = json.loads(exact.stdout)
    assert response["results"][0]["proposal"]["content"] == HOSTILE_REPLY  # JSON keeps the values exact


def test_deliberations_list_without_a_terminal_prints_whole_values_as_tsv(
    environment: dict[str, str], served: Served
) -> None:
    task = "Add two numbers,\tthen explain\nthe result at length so that no column could hold it whole"
    created = run(environment, "deliberate", "--address", served.address, "--role", "DEV", "--task", task, "--json")
    deliberation_id = json.loads(created.stdout)["deliberation_id"]

    listed = run(environment, "deliberations", "list", "--address", served.address, "--page-size", "1")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header == "id\tkind\trole\tstatus\tcreated\ttask"
    values = row.split("\t")
    assert values[:4] == [deliberation_id, "deliberate", "DEV", "succeeded"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", values[4])
    assert values[5] == " ".join(task.split())
    assert listed.stderr.startswith("more: --page-token ")


def test_unauthenticated_names_the_cli_options(environment: dict[str, str], tmp_path: Path) -> None:
    env = {**environment, "ORCH_AUTH_TOKENS": "s3cret-token"}
    server = start_server(env, tmp_path / "serve.log")
    try:
        missing = run(env, "status", "--address", server.address)
        assert missing.returncode == 1
        assert missing.stderr == (
            f"orchestrator: {server.address}: UNAUTHENTICATED: the server requires a bearer token: "
            "give --token-file FILE (its first line is the token) or set ORCH_TOKEN\n"
        )
        refused = run({**env, "ORCH_TOKEN": "wrong"}, "status", "--address", server.address)
        assert refused.stderr == (
            f"orchestrator: {server.address}: UNAUTHENTICATED: the server refused the bearer token "
            "(from --token-file or ORCH_TOKEN)\n"
        )
        token_file = tmp_path / "token"
        token_file.write_text("s3cret-token\n")
        assert run(env, "--token-file", str(token_file), "status", "--address", server.address).returncode == 0
    finally:
        server.process.kill()
        server.process.wait()


def test_orchestrate_is_a_command_and_top_k_needs_it(environment: dict[str, str], served: Served) -> None:
    chosen = run(environment, "orchestrate", "--address", served.address, "--role", "DEV", "--task", "Add",
                 "--top-k", "1", "--json")
    assert chosen.returncode == 0, chosen.stderr
    response = json.loads(chosen.stdout)
    assert len(response["candidates"]) == 1
    assert response["deliberation_id"] == response["execution_id"] == response["deliberation"]["deliberation_id"]

    misplaced = run(environment, "deliberate", "--address", served.address, "--role", "DEV", "--task", "Add",
                    "--top-k", "2")
    assert misplaced.returncode == 2
    assert "--top-k selects among candidates: use it with --orchestrate" in misplaced.stderr


def test_client_options_go_before_or_after_the_command(environment: dict[str, str], served: Served) -> None:
    before = run(environment, "--address", served.address, "--timeout", "30", "deliberate", "--role", "DEV",
                 "--task", "Add", "--json")
    assert before.returncode == 0, before.stderr
    assert json.loads(before.stdout)["results"]

    after_wins = run(environment, "--address", "127.0.0.1:1", "health", "--address", served.address)
    assert after_wins.returncode == 0, after_wins.stderr

    listed = run(environment, "--address", served.address, "deliberations", "list", "--json")
    assert listed.returncode == 0, listed.stderr

    misplaced = run(environment, "--address", served.address, "plugins")
    assert misplaced.returncode == 2
    assert "--address: the plugins command does not dial a server" in misplaced.stderr
