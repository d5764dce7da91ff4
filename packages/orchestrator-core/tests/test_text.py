"""Model, plugin and sandbox text made inert for a terminal."""

from __future__ import annotations

import pytest

import orchestrator_core
from orchestrator_core.text import inert


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
        ("\x1b[2J", "\\x1b[2J"),
        ("a\x00b\x7fc\u009bd\u0085", "a\\x00b\\x7fc\\x9bd\\x85"),
        ("line\r\nnext", "line\\x0d\nnext"),
        ("kept:\n\ttab, ünïcode, [bold red]", "kept:\n\ttab, ünïcode, [bold red]"),
    ],
)
def test_control_characters_are_written_out(raw: str, shown: str) -> None:
    assert inert(raw) == shown


def test_the_version_is_still_there() -> None:
    assert orchestrator_core.__version__ == "0.1.0"
