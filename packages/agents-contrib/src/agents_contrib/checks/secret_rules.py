"""Secrets that must never ship in a proposal: keys, tokens, passwords in URLs.

Each pattern is a rule with an id. Patterns look for the shape of real credentials
(prefixes issuers document, key lengths), not for words like "password", so a manifest
that *references* a secret (``secretKeyRef``) is not flagged.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from agents_contrib.artifacts import Artifact
from agents_contrib.checks.findings import Finding


@dataclass(frozen=True)
class SecretRule:
    rule_id: str
    what: str
    pattern: re.Pattern[str]


SECRET_RULES: tuple[SecretRule, ...] = (
    SecretRule("SEC001", "private key",
               re.compile(r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----")),
    SecretRule("SEC002", "AWS access key id", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b")),
    SecretRule("SEC003", "GitHub token",
               re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{60,})\b")),
    SecretRule("SEC004", "Slack token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    SecretRule("SEC005", "API secret key (sk-...)", re.compile(r"\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}\b")),
    SecretRule("SEC006", "Google API key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b")),
    SecretRule("SEC007", "password in URL",
               re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s:/@'\"]+:(?!\$\{|\{\{|<|\*+@|\$\()[^\s@/'\"]{3,}@[^\s/'\"]+",
                          re.IGNORECASE)),
    SecretRule("SEC008", "hard-coded password or secret",
               re.compile(r"""(?ix)\b(?:password|passwd|secret_key|client_secret|api_key|apikey|access_token)
                              \s*[:=]\s*["']([^"'\s$<{]{8,})["']""")),
    SecretRule("SEC009", "JSON web token",
               re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\b")),
)

_PLACEHOLDER = re.compile(r"(?i)(changeme|example|placeholder|dummy|your[_-]|xxx|\*\*\*|redacted)")


def find_secrets(artifacts: Iterable[Artifact], disabled: frozenset[str] = frozenset()) -> list[Finding]:
    findings: list[Finding] = []
    for artifact in artifacts:
        for number, line in enumerate(artifact.content.splitlines(), start=1):
            for rule in SECRET_RULES:
                if rule.rule_id in disabled:
                    continue
                match = rule.pattern.search(line)
                if match and not _PLACEHOLDER.search(match.group(0)):
                    findings.append(Finding(rule.rule_id, rule.what, artifact, number))
    return findings
