"""The examples written in a problem's docstring: what a user of the service would have.

:mod:`.problem_tests` turns them into the visible tests. They are read from the prompt alone,
never from the problem's own test code.

HumanEval docstrings write their examples in many ways, and :func:`docstring_examples` reads
these (anything it cannot read without guessing is left out):

- doctests, ``>>> f(x)`` and the output up to a blank line or the next ``>>>``; a ``>>>`` line
  without output is a statement run before the examples after it, or, when it is a comparison
  ``f(x) == y``, an example itself;
- a call and its value: ``f(x) ==> y``, ``==``, ``=>``, ``->``, ``➞``, ``=``, ``should return y``,
  ``returns y``, also after ``#``; a chain of explanations keeps its last ``=`` segment
  (``f("5 apples", 19) -> 19 - 5 = 14``); lowercase ``true`` and ``false`` are Python's;
- named arguments: ``For lst = [1, 2] the output should be 3`` and ``Input: arr = [1], k = 1``
  followed by ``Output: [1]``, or ``Input: [1]`` when the function has one parameter.

Examples are kept only with literal arguments and a literal expected value (doctest outputs may
also be compared as ``repr`` text), and not on lines that define the function by a recurrence:
there ``tri(1) = 3`` states the sequence's first term, not what ``tri(1)`` returns.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass

from orchestrator_grpc.evaluation.humaneval import Problem
from orchestrator_grpc.evaluation.prose_scan import (
    bracket_end,
    chain_start,
    line_end,
    parses,
    value_end,
)


@dataclass(frozen=True)
class Example:
    call: str
    """A Python expression that calls the entry point, e.g. ``has_close_elements([1.0, 2.0], 0.5)``."""
    expected: str
    """The expected value as written: Python literal text, or else a doctest's ``repr`` text."""
    setup: tuple[str, ...] = ()
    """Doctest statements without output that came before the example, e.g. ``x = 5``."""


@dataclass(frozen=True)
class _Found:
    """An example and where it starts in the docstring, to keep the docstring's order."""

    line: int
    column: int
    example: Example


@dataclass(frozen=True)
class _Signature:
    entry_point: str
    parameters: tuple[str, ...]


# -- the docstring ---------------------------------------------------------------------------

_QUOTED = re.compile(r"^[rRuU]?(\"\"\"|'''|\"|')(.*)\1$", re.DOTALL)


def _entry_function(problem: Problem) -> ast.FunctionDef | None:
    try:
        tree = ast.parse(problem.prompt)
    except SyntaxError:
        return None
    functions = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == problem.entry_point]
    return functions[-1] if functions else None


def _docstring_source(prompt: str, function: ast.FunctionDef) -> str | None:
    """The entry point's docstring as it is written in the prompt, escapes unprocessed: a user
    reads ``"a\\nb"`` in an example as a string with a newline, and so does ``ast`` here."""
    for statement in function.body:
        if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
            if not isinstance(statement.value.value, str):
                continue
            segment = ast.get_source_segment(prompt, statement.value)
            quoted = _QUOTED.match(segment or "")
            return quoted.group(2) if quoted else None
    return None


def docstring_examples(problem: Problem) -> list[Example]:
    """The examples written in the entry point's docstring, in the docstring's order.

    Read from ``problem.prompt`` only: the hidden test code and the canonical solution are
    never looked at.
    """
    function = _entry_function(problem)
    if function is None:
        return []
    docstring = _docstring_source(problem.prompt, function)
    if docstring is None:
        return []
    arguments = function.args
    signature = _Signature(problem.entry_point, tuple(arg.arg for arg in arguments.posonlyargs + arguments.args))
    lines = docstring.splitlines()
    doctests, doctest_lines = _doctest_examples(lines, signature.entry_point)
    prose = "\n".join("" if index in doctest_lines else line for index, line in enumerate(lines))
    found = doctests + _call_examples(prose, signature) + _named_examples(prose, signature)
    return _unique(item.example for item in sorted(found, key=lambda item: (item.line, item.column)))


def _unique(examples: Iterator[Example]) -> list[Example]:
    return list(dict.fromkeys(examples))


# -- literals --------------------------------------------------------------------------------

_BOOLEANS = {"true": True, "false": False}


class _Booleans(ast.NodeTransformer):
    """Lowercase ``true`` and ``false``, as some docstrings write them, as Python's booleans."""

    def visit_Name(self, node: ast.Name) -> ast.AST:
        if node.id in _BOOLEANS:
            return ast.copy_location(ast.Constant(_BOOLEANS[node.id]), node)
        return node


def literal_source(text: str) -> str | None:
    """``text`` as Python literal text (``true``/``false`` normalised), or None when it is not one."""
    stripped = text.strip()
    try:
        expression = ast.parse(stripped, mode="eval")
    except (SyntaxError, ValueError):
        return None
    lowercase = any(isinstance(node, ast.Name) and node.id in _BOOLEANS for node in ast.walk(expression))
    if lowercase:
        expression = _Booleans().visit(expression)
    if not _is_literal(expression.body):
        return None
    return ast.unparse(expression) if lowercase else stripped


def _is_literal(node: ast.expr) -> bool:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, RecursionError):
        return False
    return True


def _calls(node: ast.AST, name: str) -> bool:
    """Whether ``node`` calls the function ``name`` anywhere, e.g. ``round(name(x), 2)``."""
    return any(
        isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name) and inner.func.id == name
        for inner in ast.walk(node)
    )


def _literal_call(text: str, entry_point: str) -> ast.Call | None:
    """``text`` parsed as a call of the entry point with literal arguments only."""
    try:
        expression = ast.parse(text, mode="eval").body
    except SyntaxError:
        return None
    if not isinstance(expression, ast.Call) or not _is_entry_call(expression, entry_point):
        return None
    if any(isinstance(argument, ast.Starred) for argument in expression.args):
        return None
    if any(named.arg is None for named in expression.keywords):
        return None
    arguments = [*expression.args, *(named.value for named in expression.keywords)]
    return expression if all(_is_literal(argument) for argument in arguments) else None


def _is_entry_call(expression: ast.expr, entry_point: str) -> bool:
    return (
        isinstance(expression, ast.Call) and isinstance(expression.func, ast.Name)
        and expression.func.id == entry_point
    )


_FOLLOWING = re.compile(r"\.?(?:\s*$|\s*#|\s+[(A-Za-z])")
"""What may follow an expected value on its line: nothing, a full stop, a comment, or words."""


def _expected_at(text: str, start: int, *, chained: bool) -> str | None:
    """The literal value written at ``start``, or None when there is none or what follows it
    on the line makes it ambiguous (``2 * 3``, ``""aaa"``)."""
    if chained:
        start = chain_start(text, start)
    while start < len(text) and text[start] in " \t":
        start += 1
    end = value_end(text, start)
    written = text[start:end]
    if written.endswith(".") and literal_source(written[:-1]) is not None:
        end -= 1
    literal = literal_source(text[start:end])
    if literal is None or not _FOLLOWING.match(text, end, line_end(text, end)):
        return None
    return literal


# -- doctests --------------------------------------------------------------------------------

_PROMPT = ">>>"
_CONTINUATION = "..."


def _after_marker(line: str, marker: str) -> str:
    text = line.strip()[len(marker):]
    return text[1:] if text.startswith(" ") else text


def _doctest_examples(lines: list[str], entry_point: str) -> tuple[list[_Found], set[int]]:
    """The doctest examples, and the indices of the lines they take (not prose to read again)."""
    found: list[_Found] = []
    taken: set[int] = set()
    setup: list[str] = []
    index = 0
    while index < len(lines):
        if not lines[index].strip().startswith(_PROMPT):
            index += 1
            continue
        first = index
        source = [_after_marker(lines[index], _PROMPT)]
        index += 1
        while index < len(lines) and lines[index].strip().startswith(_CONTINUATION):
            source.append(_after_marker(lines[index], _CONTINUATION))
            index += 1
        output: list[str] = []
        while index < len(lines) and lines[index].strip() and not lines[index].strip().startswith(_PROMPT):
            output.append(lines[index].strip())
            index += 1
        taken.update(range(first, index))
        example = _doctest_example("\n".join(source), "\n".join(output), entry_point, setup)
        if example is not None:
            found.append(_Found(first, 0, example))
    return found, taken


def _doctest_example(source: str, output: str, entry_point: str, setup: list[str]) -> Example | None:
    """One ``>>>`` example; a statement without output is added to ``setup`` instead."""
    try:
        statements = ast.parse(source).body
    except SyntaxError:
        return None
    if len(statements) == 1 and isinstance(statements[0], ast.Expr):
        expression = statements[0].value
        if output:
            return _doctest_output_example(expression, output, entry_point, setup)
        if _calls(expression, entry_point):
            return _silent_example(expression, entry_point, setup)
    if not output and not any(_calls(statement, entry_point) for statement in statements):
        setup.extend(ast.unparse(statement) for statement in statements)
    return None


def _doctest_output_example(expression: ast.expr, output: str, entry_point: str, setup: list[str]) -> Example | None:
    if not _calls(expression, entry_point):
        return None
    if literal_source(output) is None and "\n" in output:
        return None  # several lines that are no literal: prose run on after the output
    return Example(ast.unparse(expression), output, tuple(setup))


def _silent_example(expression: ast.expr, entry_point: str, setup: list[str]) -> Example | None:
    """``>>> f(x) == y`` is an example of ``f(x)``; a bare ``>>> f(x)`` shows None, as in doctest."""
    if isinstance(expression, ast.Compare) and len(expression.ops) == 1 and isinstance(expression.ops[0], ast.Eq):
        expected = literal_source(ast.unparse(expression.comparators[0]))
        if expected is not None and _calls(expression.left, entry_point):
            return Example(ast.unparse(expression.left), expected, tuple(setup))
        return None
    if _is_entry_call(expression, entry_point):
        return Example(ast.unparse(expression), "None", tuple(setup))
    return None


# -- a call and its value ------------------------------------------------------------------

_SEPARATOR = re.compile(r"[ \t]*(?:#[ \t]*)?(?:==>|=>|==|->|➞|=|should\s+(?:return|be)\b|returns\b)[ \t]*")


@dataclass(frozen=True)
class _Occurrence:
    """A call of the entry point written in the prose, and what follows it."""

    start: int
    end: int
    call: ast.Call | None
    """The call, when its arguments are all literals."""
    expected: str | None
    recursive: bool
    """Whether the line defines the function by itself (``f(n) = f(n - 1) + ...``)."""


def _occurrences(prose: str, entry_point: str) -> list[_Occurrence]:
    occurrences: list[_Occurrence] = []
    pattern = re.compile(rf"(?<![\w.]){re.escape(entry_point)}\(")
    for match in pattern.finditer(prose):
        end = bracket_end(prose, match.end() - 1)
        if end < 0:
            continue
        call = _literal_call(prose[match.start():end], entry_point)
        separator = _SEPARATOR.match(prose, end, line_end(prose, end))
        expected = None
        defines_by_itself = False
        if separator is not None:
            expected = _expected_at(prose, separator.end(), chained=True)
            defines_by_itself = bool(pattern.search(prose, separator.end(), line_end(prose, separator.end())))
        recursive = defines_by_itself or (call is None and parses(prose[match.start():end]))
        occurrences.append(_Occurrence(match.start(), end, call, expected, recursive))
    return occurrences




def _line_of(text: str, index: int) -> int:
    return text.count("\n", 0, index)


def _call_examples(prose: str, signature: _Signature) -> list[_Found]:
    """``f(x) ==> y`` and its kin, except on runs of lines that define ``f`` by a recurrence."""
    occurrences = _occurrences(prose, signature.entry_point)
    recurrence_lines = _recurrence_lines(prose, occurrences)
    found: list[_Found] = []
    for occurrence in occurrences:
        line = _line_of(prose, occurrence.start)
        if occurrence.call is None or occurrence.expected is None or line in recurrence_lines:
            continue
        column = occurrence.start - (prose.rfind("\n", 0, occurrence.start) + 1)
        found.append(_Found(line, column, Example(ast.unparse(occurrence.call), occurrence.expected)))
    return found


def _recurrence_lines(prose: str, occurrences: list[_Occurrence]) -> set[int]:
    """The lines of each run of consecutive lines with calls of the function in which one line
    defines it by a recurrence: the run states the definition, its first terms included."""
    lines_with_calls: dict[int, bool] = {}
    for occurrence in occurrences:
        for line in range(_line_of(prose, occurrence.start), _line_of(prose, occurrence.end) + 1):
            lines_with_calls[line] = lines_with_calls.get(line, False) or occurrence.recursive
    recurrence: set[int] = set()
    for run in _runs(sorted(lines_with_calls)):
        if any(lines_with_calls[line] for line in run):
            recurrence.update(run)
    return recurrence


def _runs(lines: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for line in lines:
        if runs and runs[-1][-1] == line - 1:
            runs[-1].append(line)
        else:
            runs.append([line])
    return runs


# -- named arguments -----------------------------------------------------------------------

_FOR_NAMED = re.compile(r"^[ \t]*for[ \t]+(?=[A-Za-z_]\w*[ \t]*=(?!=))", re.IGNORECASE | re.MULTILINE)
_SHOULD_BE = re.compile(r"\b(?:output|result)\s+should\s+be\s+")
_INPUT = re.compile(r"^[ \t]*Input[ \t]*:", re.MULTILINE)
_OUTPUT = re.compile(r"^[ \t]*Output[ \t]*:", re.MULTILINE)
_NAME_EQUALS = re.compile(r"[ \t]*([A-Za-z_]\w*)[ \t]*=(?!=)[ \t]*")
_NAME_BOUND = re.compile(r"\s*([A-Za-z_]\w*)[ \t]*(?:=(?!=)|:)[ \t]*")
_BETWEEN_VALUES = re.compile(r"\s*,?")


def _named_values(text: str, start: int, name_pattern: re.Pattern[str]) -> tuple[list[tuple[str, str]], int]:
    """``a = 1, b = "x"`` from ``start``: the names with their literal values, and where they end."""
    values: list[tuple[str, str]] = []
    position = start
    while True:
        bound = name_pattern.match(text, position)
        if bound is None:
            return values, position
        end = value_end(text, bound.end())
        literal = literal_source(text[bound.end():end])
        if literal is None:
            return values, position
        values.append((bound.group(1), literal))
        separator = _BETWEEN_VALUES.match(text, end)
        position = separator.end() if separator else end


def _named_call(signature: _Signature, values: list[tuple[str, str]]) -> str | None:
    """The call with these values for the parameters they name, when they name each one once."""
    named = dict(values)
    if len(named) != len(values) or set(named) != set(signature.parameters):
        return None
    arguments = [ast.parse(named[name], mode="eval").body for name in signature.parameters]
    return ast.unparse(ast.Call(ast.Name(signature.entry_point, ast.Load()), arguments, []))


def _named_examples(prose: str, signature: _Signature) -> list[_Found]:
    return _for_examples(prose, signature) + _input_output_examples(prose, signature)


def _for_examples(prose: str, signature: _Signature) -> list[_Found]:
    """``For lst = [1, 2] the output should be 3`` (also ``the result should be``)."""
    found: list[_Found] = []
    for match in _FOR_NAMED.finditer(prose):
        values, end = _named_values(prose, match.end(), _NAME_EQUALS)
        should_be = _SHOULD_BE.search(prose, end, line_end(prose, end))
        call = _named_call(signature, values)
        if should_be is None or call is None:
            continue
        expected = _expected_at(prose, should_be.end(), chained=False)
        if expected is not None:
            found.append(_Found(_line_of(prose, match.start()), 0, Example(call, expected)))
    return found


def _input_output_examples(prose: str, signature: _Signature) -> list[_Found]:
    """``Input: arr = [1, 2], k = 1`` (or ``Input: [1, 2]`` for one parameter), then ``Output: [2]``
    on one of the lines that follow, before any blank line."""
    found: list[_Found] = []
    for match in _INPUT.finditer(prose):
        output = _OUTPUT.search(prose, match.end())
        if output is None or not _one_block(prose[match.end():output.start()]):
            continue
        call = _input_call(prose[match.end():output.start()], signature)
        expected = _expected_at(prose, output.end(), chained=False)
        if call is not None and expected is not None:
            found.append(_Found(_line_of(prose, match.start()), 0, Example(call, expected)))
    return found


def _one_block(between: str) -> bool:
    """Whether the text between ``Input:`` and the ``Output:`` line holds no blank line and no other input."""
    inner_lines = between.split("\n")[1:-1]
    return all(line.strip() for line in inner_lines) and _INPUT.search(between) is None


def _input_call(given: str, signature: _Signature) -> str | None:
    values, end = _named_values(given, 0, _NAME_BOUND)
    if values:
        return _named_call(signature, values) if not given[end:].strip() else None
    literal = literal_source(given)
    if literal is None or len(signature.parameters) != 1:
        return None
    return _named_call(signature, [(signature.parameters[0], literal)])
