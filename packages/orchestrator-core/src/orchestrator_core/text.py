"""Text that came from a model, a plugin or a sandbox, made inert for a terminal.

Such text may carry escape sequences (``ESC ] 0 ; title BEL`` retitles a terminal,
``ESC [ 2 J`` clears it). :func:`inert` writes every control character out visibly
instead, so printing the text shows the sequence rather than running it.
"""

from __future__ import annotations

_KEPT = "\n\t"
_CONTROL_CODES = (*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0))  # C0, DEL, C1
_VISIBLE = {code: f"\\x{code:02x}" for code in _CONTROL_CODES if chr(code) not in _KEPT}


def inert(text: str) -> str:
    """``text`` with each control character but newline and tab written as ``\\xNN``."""
    return text.translate(_VISIBLE)
