"""The policy check's built-in rules, each on artifacts that break it and ones that do not."""

from __future__ import annotations

import pytest
from checks_support import proposal, python_block, sample, task

from agents_contrib.checks.policy import PolicyCheck
from agents_contrib.checks.settings import PolicySettings
from orchestrator_core.models import CheckResult, Task


async def judge(content: str, the_task: Task | None = None, **settings: object) -> CheckResult:
    check = PolicyCheck(PolicySettings(**settings))  # type: ignore[arg-type]
    return await check.run(the_task or task(), proposal(content))


def rule_ids(result: CheckResult) -> list[str]:
    return [line.split(" ", 1)[0] for line in result.diagnostics if not line.startswith("REQ000")]


async def test_a_clean_proposal_passes_with_full_score() -> None:
    result = await judge(python_block(sample("good.py.txt")) + "```yaml\na: 1\n```\n")
    assert (result.name, result.kind, result.passed, result.score) == ("policy", "policy", True, 1.0)
    assert result.diagnostics == ()
    assert result.duration_seconds >= 0


async def test_dangerous_python_calls_are_found_with_ids_and_lines() -> None:
    result = await judge(python_block(sample("dangerous.py.txt")))
    assert not result.passed
    assert result.score == 0.0
    assert result.diagnostics == (
        "PY001 eval() evaluates a string as code at line 10 of artifact 1 (python)",
        "PY002 exec() executes a string as code at line 11 of artifact 1 (python)",
        "PY003 os.system() runs a shell command at line 12 of artifact 1 (python)",
        "PY003 os.system() runs a shell command at line 13 of artifact 1 (python)",
        "PY004 subprocess.run() runs a shell (shell=True) at line 14 of artifact 1 (python)",
        "PY005 pickle.loads() deserialises untrusted data into code at line 15 of artifact 1 (python)",
        "PY006 yaml.load() without a safe loader can build arbitrary objects at line 16 of artifact 1 (python)",
        "PY007 __import__() imports a module by computed name at line 17 of artifact 1 (python)",
    )


async def test_mentions_in_text_and_safe_forms_are_not_violations() -> None:
    result = await judge(python_block(sample("safe_lookalikes.py.txt")))
    assert result.passed, result.diagnostics


@pytest.mark.parametrize(
    ("line", "rule"),
    [
        ("-----BEGIN RSA PRIVATE KEY-----", "SEC001"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "SEC001"),
        ("aws_access_key_id = AKIAIOSFODNN7QWERTYU", "SEC002"),
        ("token: ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8", "SEC003"),
        ("SLACK=xoxb-123456789012-abcdefghijkl", "SEC004"),
        ("OPENAI_API_KEY=sk-proj-abcdefghijklmnopqrstuvwx", "SEC005"),
        ("key = 'AIzaSyA1234567890abcdefghijklmnopqrstuv'", "SEC006"),
        ("DATABASE_URL=postgres://app:s3cr3tpw@db.internal:5432/app", "SEC007"),
        ('password = "Tr0ub4dor&3x"', "SEC008"),
        ("auth: eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
         "SEC009"),
    ],
)
async def test_each_secret_rule_fires_on_a_real_looking_credential(line: str, rule: str) -> None:
    result = await judge(f"```text\nconfig:\n{line}\n```\n")
    assert not result.passed
    assert rule_ids(result) == [rule]
    assert result.diagnostics[0].endswith("at line 2 of artifact 1 (text)")


@pytest.mark.parametrize(
    "line",
    [
        "password: ${DB_PASSWORD}",
        "DATABASE_URL=postgres://app:${DB_PASSWORD}@db:5432/app",
        "url: https://example.com/path@v2",
        'api_key = "your-api-key-here"',
        "valueFrom: {secretKeyRef: {name: db, key: password}}",
        "sk-short",
        "key = os.environ['OPENAI_API_KEY']",
    ],
)
async def test_references_and_placeholders_are_not_secrets(line: str) -> None:
    result = await judge(f"```text\n{line}\n```\n")
    assert result.passed, result.diagnostics


async def test_forbidden_items_in_every_form() -> None:
    content = python_block("import requests\nfrom pickle import dumps\nvalue = eval('1')  # global state\n")
    the_task = task(forbidden=("requests", "import:pickle", "call:eval", "re:global\\s+state", "lang:sql",
                               "threads"))
    result = await judge(content, the_task, disabled_rules=["PY001"])
    assert result.diagnostics == (
        "FORBID001 forbidden item 'requests' found at line 1 of artifact 1 (python)",
        "FORBID001 forbidden item 'import:pickle' found at line 2 of artifact 1 (python)",
        "FORBID001 forbidden item 'call:eval' found at line 3 of artifact 1 (python)",
        "FORBID001 forbidden item 're:global\\\\s+state' found at line 3 of artifact 1 (python)",
    )
    assert result.score == 0.0


async def test_requirements_checkable_ones_enforced_prose_ones_noted() -> None:
    content = python_block("import asyncio\n\nasync def main():\n    await asyncio.sleep(0)\n")
    the_task = task(requirements=("import:asyncio", "lang:python", "call:asyncio.sleep", "lang:yaml",
                                  "re:^def ", "Use type hints everywhere"))
    result = await judge(content, the_task)
    assert result.diagnostics == (
        "REQ001 requirement not met: 'lang:yaml'",
        "REQ001 requirement not met: 're:^def '",
        "REQ000 not machine-checkable, left to the agents: 'Use type hints everywhere'",
    )
    assert not result.passed
    assert result.score == 0.5


# Patterns that make a backtracking engine run for hours on a few kilobytes.
CATASTROPHIC = ("(.*\\s*)*Z$", "(a+)+$", "(a|aa)+$", "(x+x+)+y")


@pytest.mark.parametrize("pattern", CATASTROPHIC)
async def test_catastrophic_patterns_are_matched_in_linear_time(pattern: str) -> None:
    # With Python's re each of these would not return: the text is long and never matches.
    text = "```text\n" + ("a" * 4000 + " " + "x" * 4000 + "\n") * 4 + "b\n```\n"
    the_task = task(requirements=("re:" + pattern,), forbidden=("re:" + pattern,))
    result = await judge(text, the_task)
    assert result.diagnostics == (f"REQ001 requirement not met: {'re:' + pattern!r}",)


async def test_a_matching_pattern_gives_the_line_counted_in_characters() -> None:
    content = "```text\nééé\né\n\n\nends in Z\n```\n"
    result = await judge(content, task(forbidden=("re:(.*\\s*)*Z$", "re:^é$")))
    assert result.diagnostics == (
        "FORBID001 forbidden item 're:(.*\\\\s*)*Z$' found at line 1 of artifact 1 (text)",
        "FORBID001 forbidden item 're:^é$' found at line 2 of artifact 1 (text)",
    )


async def test_forbidden_phrases_are_whole_words_in_any_script() -> None:
    content = "```text\nthe résumé\nrésuméA is one word\n(Résumé) again\n```\n"
    result = await judge(content, task(forbidden=("résumé", "$x", "sumé")))
    assert result.diagnostics == ("FORBID001 forbidden item 'résumé' found at line 1 of artifact 1 (text)",)
    result = await judge("```text\nrésuméA and (RÉSUMÉ)\n```\n", task(forbidden=("résumé",)))
    assert result.diagnostics == ("FORBID001 forbidden item 'résumé' found at line 1 of artifact 1 (text)",)


async def test_a_pattern_re2_refuses_is_reported_not_raised() -> None:
    # The request is refused before a deliberation starts; a check called directly reports it.
    result = await judge("```text\naa\n```\n", task(requirements=("re:(a)\\1",), forbidden=("re:(?=a)",)))
    assert not result.passed
    assert [line.split(": ", 1)[0] for line in result.diagnostics] == [
        "REQ001 requirement cannot be checked", "FORBID001 forbidden item cannot be checked"]
    assert "pattern '(a)\\\\1' is not one the server can run: invalid escape sequence" in result.diagnostics[0]


async def test_size_limits() -> None:
    big = "```text\n" + "x" * 200 + "\n```\n"
    result = await judge(big + "```text\nsmall\n```\n", max_artifact_bytes=100, max_proposal_bytes=150)
    assert rule_ids(result) == ["SIZE001", "SIZE002"]
    assert result.diagnostics[0] == "SIZE001 artifact is 201 bytes, more than the 100 allowed of artifact 1 (text)"


async def test_disabled_rules_are_skipped_and_the_penalty_is_configurable() -> None:
    content = python_block("eval('1')\nexec('x = 1')\n")
    assert rule_ids(await judge(content, disabled_rules=["PY002"])) == ["PY001"]
    result = await judge(content, violation_penalty=0.1)
    assert result.score == pytest.approx(0.8)


def test_settings_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_POLICY_DISABLED_RULES", "PY001, SEC008")
    monkeypatch.setenv("ORCH_POLICY_MAX_ARTIFACT_BYTES", "1000")
    settings = PolicySettings()
    assert settings.disabled_rules == ["PY001", "SEC008"]
    assert settings.max_artifact_bytes == 1000
    assert settings.dir is None
