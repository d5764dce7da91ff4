"""Text from a model, a plugin or a sandbox, ready for rich: shown, never interpreted.

Control characters are written out (:func:`orchestrator_core.text.inert`) and rich markup
is escaped, so ``[bold red]`` or ``[link=...]`` in a reply prints as it is written.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from orchestrator_core.text import inert


def shown(text: str) -> str:
    """``text`` for a place in a markup string."""
    return escape(inert(text))


def plain(text: str, style: str = "") -> Text:
    """``text`` as a rich Text (never parsed as markup)."""
    return Text(inert(text), style=style)


class CLIConsole(Console):
    """A rich Console that leaves a closed stdout to the command's own handling.

    rich exits with status 1 when its output pipe closes; the ``orchestrator`` command
    ends every command alike there (exit 141, see ``orchestrator_grpc.cli``).
    """

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError
