"""The lint check on real sample artifacts: ruff, yamllint, Kubernetes schemas, JSON."""

from __future__ import annotations

import pytest
from checks_support import proposal, python_block, sample, task

from agents_contrib.checks.lint import LintCheck
from agents_contrib.checks.settings import LintSettings
from orchestrator_core.models import CheckResult


async def lint(content: str, **settings: object) -> CheckResult:
    return await LintCheck(LintSettings(**settings)).run(task(), proposal(content))  # type: ignore[arg-type]


def yaml_block(text: str) -> str:
    return f"```yaml\n{text.rstrip()}\n```\n"


async def test_clean_python_passes_with_full_score() -> None:
    result = await lint(python_block(sample("good.py.txt")))
    assert (result.name, result.kind, result.passed, result.score) == ("lint", "lint", True, 1.0)
    assert result.diagnostics == ("artifact 1 (python): ruff passed, 0 problems, score 1.00",)


async def test_ruff_findings_are_weighted_by_severity() -> None:
    result = await lint(python_block(sample("bad.py.txt")))
    assert not result.passed
    assert result.diagnostics == (
        "F401 `os` imported but unused at line 1 of artifact 1 (python) [warning]",
        "F401 `sys` imported but unused at line 2 of artifact 1 (python) [warning]",
        "B006 Do not use mutable data structures for argument defaults at line 5 of artifact 1 (python) [warning]",
        "F821 Undefined name `totl` at line 9 of artifact 1 (python) [error]",
        "artifact 1 (python): ruff failed, 4 problems, score 0.29",
    )
    assert result.score == pytest.approx(1 / (1 + 0.5 * 3 + 1.0))


async def test_style_problems_cost_little_and_do_not_fail() -> None:
    result = await lint(python_block("def f(x):  \n    return x\n"))
    assert result.passed
    assert result.diagnostics[0] == "W291 Trailing whitespace at line 1 of artifact 1 (python) [style]"
    assert result.score == pytest.approx(1 / 1.1)


async def test_python_that_does_not_parse_scores_zero() -> None:
    result = await lint(python_block(sample("syntax_error.py.txt")))
    assert not result.passed
    assert result.score == 0.0
    assert result.diagnostics[0].startswith("invalid-syntax ")
    assert result.diagnostics[-1].startswith("artifact 1 (python): ruff does not parse")


async def test_the_proposal_cannot_silence_ruff() -> None:
    result = await lint(python_block("# ruff: noqa\nimport os  # noqa: F401\n")
                        + "```toml pyproject.toml\n[tool.ruff]\n```\n")
    assert result.diagnostics[0] == "F401 `os` imported but unused at line 2 of artifact 1 (python) [warning]"
    assert "artifact 2 (toml, pyproject.toml): not linted (no linter for toml)" in result.diagnostics


async def test_clean_yaml_passes() -> None:
    result = await lint(yaml_block(sample("good.yaml")))
    assert result.passed
    assert result.diagnostics == ("artifact 1 (yaml): yamllint+kubernetes-validate passed, 0 problems, score 1.00",)


async def test_yamllint_findings() -> None:
    result = await lint(yaml_block(sample("bad.yaml")))
    assert not result.passed
    assert result.diagnostics[:4] == (
        'yamllint:key-duplicates duplication of key "name" in mapping at line 3 of artifact 1 (yaml) [error]',
        "yamllint:commas too few spaces after comma at line 4 of artifact 1 (yaml) [error]",
        'yamllint:truthy truthy value should be one of [false, true] at line 5 of artifact 1 (yaml) [style]',
        "yamllint:trailing-spaces trailing spaces at line 5 of artifact 1 (yaml) [error]",
    )


async def test_yaml_that_does_not_parse_scores_zero() -> None:
    result = await lint(yaml_block(sample("broken.yaml")))
    assert not result.passed
    assert result.score == 0.0
    assert result.diagnostics[0].startswith("yaml-syntax ")


async def test_valid_kubernetes_manifests_pass_the_schema() -> None:
    result = await lint(yaml_block(sample("deployment_good.yaml")), kubernetes_version="1.30.0")
    assert result.passed, result.diagnostics
    assert "artifact 1 (yaml) document 1 (Deployment/web) valid for Kubernetes 1.30.0" in result.diagnostics
    assert "artifact 1 (yaml) document 2 (Service/web) valid for Kubernetes 1.30.0" in result.diagnostics


async def test_invalid_kubernetes_manifests_fail_the_schema() -> None:
    result = await lint(yaml_block(sample("deployment_bad.yaml")))
    assert not result.passed
    kube = [line for line in result.diagnostics if line.startswith("K8S001")]
    assert len(kube) == 1
    assert "Deployment/web (document 1)" in kube[0]
    assert kube[0].endswith("of artifact 1 (yaml) [error]")


async def test_unknown_kinds_are_noted_not_failed() -> None:
    result = await lint(yaml_block(sample("custom_resource.yaml")))
    assert result.passed
    assert any("(Widget/gadget) not validated" in line for line in result.diagnostics)


async def test_json_must_parse() -> None:
    good = await lint('```json\n{"a": [1, 2]}\n```\n')
    assert good.passed
    bad = await lint('```json\n{"a": [1, 2,]}\n```\n')
    assert not bad.passed
    assert bad.diagnostics[0].startswith("JSON001 invalid JSON: ")


async def test_languages_without_a_linter_are_reported_as_not_linted() -> None:
    content = python_block(sample("good.py.txt")) + "```sql\nselect 1;\n```\n" + "```dockerfile\nFROM x\n```\n"
    result = await lint(content)
    assert result.passed
    assert result.score == 1.0
    assert result.diagnostics[-2:] == (
        "artifact 2 (sql): not linted (no linter for sql)",
        "artifact 3 (dockerfile): not linted (no linter for dockerfile)",
    )


async def test_nothing_lintable_is_not_a_pass() -> None:
    result = await lint("```sql\nselect 1;\n```\n")
    assert not result.passed
    assert result.score == 0.0
    assert result.diagnostics == (
        "artifact 1 (sql): not linted (no linter for sql)",
        "nothing linted: no artifact in a language with a linter (json, python, yaml)",
    )


async def test_the_score_is_the_mean_over_linted_artifacts() -> None:
    result = await lint(python_block(sample("good.py.txt")) + python_block(sample("syntax_error.py.txt")))
    assert result.score == pytest.approx(0.5)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_LINT_RUFF_SELECT", "E,F")
    monkeypatch.setenv("ORCH_LINT_KUBERNETES_VERSION", "1.29.0")
    settings = LintSettings()
    assert settings.ruff_select == ["E", "F"]
    assert settings.kubernetes_version == "1.29.0"
