"""Scanning text that mixes prose and Python: where a string, a bracketed value or a chain of
``=`` explanations ends, without parsing the prose around it."""

from __future__ import annotations

import ast

_OPENING = "([{"
_CLOSING = ")]}"


def string_end(text: str, start: int) -> int:
    """The index after the string literal that starts at ``start``, or -1 if it is not closed."""
    delimiter = text[start] * 3 if text.startswith(text[start] * 3, start) else text[start]
    index = start + len(delimiter)
    while index < len(text):
        if text[index] == "\\":
            index += 2
        elif text.startswith(delimiter, index):
            return index + len(delimiter)
        elif text[index] == "\n" and len(delimiter) == 1:
            return -1
        else:
            index += 1
    return -1


def bracket_end(text: str, start: int) -> int:
    """The index after the bracket that closes the one at ``start``, or -1 if none does."""
    depth = 0
    index = start
    while index < len(text):
        character = text[index]
        if character in "'\"":
            index = string_end(text, index)
            if index < 0:
                return -1
            continue
        if character in _OPENING:
            depth += 1
        elif character in _CLOSING:
            depth -= 1
            if depth == 0:
                return index + 1
        index += 1
    return -1


def value_end(text: str, start: int) -> int:
    """The end of the value written at ``start``: its brackets and strings closed, up to the
    first space or comma outside them (``[1, 2] the output``, ``"ae", the result``)."""
    depth = 0
    index = start
    while index < len(text):
        character = text[index]
        if character in "'\"":
            end = string_end(text, index)
            if end < 0:
                return index
            index = end
            continue
        if character in _OPENING:
            depth += 1
        elif character in _CLOSING:
            if depth == 0:
                return index
            depth -= 1
        elif depth == 0 and (character.isspace() or character == ","):
            return index
        index += 1
    return index


def line_end(text: str, start: int) -> int:
    end = text.find("\n", start)
    return len(text) if end < 0 else end


def top_level_equals(text: str) -> list[int]:
    """Where ``text`` has a lone ``=`` outside strings and brackets (not ``==``, ``<=``, ``=>``)."""
    positions: list[int] = []
    depth = 0
    index = 0
    while index < len(text):
        character = text[index]
        if character in "'\"":
            index = string_end(text, index)
            if index < 0:
                break
            continue
        if character in _OPENING:
            depth += 1
        elif character in _CLOSING:
            depth = max(depth - 1, 0)
        elif character == "=" and depth == 0:
            before = text[index - 1] if index else ""
            after = text[index + 1] if index + 1 < len(text) else ""
            if before not in "=<>!" and after not in "=>":
                positions.append(index)
        index += 1
    return positions


def chain_start(text: str, start: int) -> int:
    """Where the value starts in ``19 - 5 - 6 = 8`` (after the last ``=``) when what comes before
    each ``=`` is an expression that explains it; otherwise ``start``."""
    line = text[start:line_end(text, start)]
    equals = top_level_equals(line)
    if not equals:
        return start
    segments = [line[begin:end] for begin, end in zip([0, *(at + 1 for at in equals[:-1])], equals, strict=True)]
    if not all("#" not in segment and parses(segment.strip()) for segment in segments):
        return start
    return start + equals[-1] + 1


def parses(text: str) -> bool:
    try:
        ast.parse(text, mode="eval")
    except SyntaxError:
        return False
    return True
