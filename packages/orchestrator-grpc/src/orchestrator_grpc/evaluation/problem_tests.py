"""The tests a problem is judged by: visible ones from its docstring, the hidden ones afterwards.

Selection in the service may use only what a user would have, the examples written in the
docstring: :func:`visible_tests` turns them into a pytest file that the service's dry-run check
runs against each proposal. The problem's own test code is used only to score the final answer
(:func:`hidden_tests`), and nothing of it reaches the visible file. Both files are built with
``repr`` and ``ast.unparse``, never by pasting docstring text, so any content stays inert.
"""

from __future__ import annotations

import ast
import keyword

from orchestrator_core.models import TaskTest
from orchestrator_grpc.evaluation.examples import Example, docstring_examples, literal_source
from orchestrator_grpc.evaluation.humaneval import Problem

SOLUTION_MODULE = "solution"
"""The module the tests import the entry point from: an unnamed code block of a proposal."""
VISIBLE_TEST_PATH = "test_examples.py"
HIDDEN_TEST_PATH = "test_humaneval.py"


_COMPARISON = '''

def _same(got, expected):
    """Equal as Python values, floats within a relative tolerance (also inside containers)."""
    if isinstance(expected, float) or isinstance(got, float):
        try:
            return math.isclose(got, expected, rel_tol=1e-6, abs_tol=1e-9)
        except TypeError:
            return False
    if isinstance(expected, (list, tuple)):
        return (
            isinstance(got, type(expected))
            and len(got) == len(expected)
            and all(_same(item, wanted) for item, wanted in zip(got, expected))
        )
    if isinstance(expected, dict):
        return (
            isinstance(got, dict)
            and got.keys() == expected.keys()
            and all(_same(got[key], expected[key]) for key in expected)
        )
    return got == expected


def _message(call, expected, got):
    return f"{call} should be {expected}, got {got!r}"
'''


def _python_name(name: str) -> str:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"the entry point {name!r} is not a Python name")
    return name


def visible_tests(problem: Problem) -> TaskTest:
    """A pytest file of the docstring's examples, importing the entry point from ``solution``."""
    entry_point = _python_name(problem.entry_point)
    examples = docstring_examples(problem)
    docstring = repr(f"The examples in the docstring of {problem.task_id}, as tests of {entry_point}.")
    imported = f"from {SOLUTION_MODULE} import {entry_point}"
    if examples:
        tests = [_example_test(number, example) for number, example in enumerate(examples, start=1)]
        sections = [f"{docstring}\n\nimport math\n\n{imported}", _COMPARISON, *tests]
    else:
        sections = [f"{docstring}\n\n{imported}", _callable_test(entry_point)]
    content = "\n\n\n".join(section.strip("\n") for section in sections) + "\n"
    return TaskTest(path=VISIBLE_TEST_PATH, content=content)


def _callable_test(entry_point: str) -> str:
    return (
        "# The docstring has no example that can be checked: this only checks that the entry point exists.\n"
        "def test_entry_point_is_callable():\n"
        f"    assert callable({entry_point})\n"
    )


def _example_test(number: int, example: Example) -> str:
    lines = [f"def test_example_{number}():"]
    for statement in example.setup:
        lines.extend(f"    {line}" for line in ast.unparse(ast.parse(statement)).splitlines())
    call = ast.unparse(ast.parse(example.call, mode="eval"))
    lines.append(f"    got = {call}")
    message = f"_message({call!r}, {example.expected!r}, got)"
    literal = literal_source(example.expected)
    if literal is None:
        lines.append(f"    assert repr(got) == {example.expected!r}, {message}")
    else:
        lines.append(f"    assert _same(got, {ast.unparse(ast.parse(literal, mode='eval'))}), {message}")
    return "\n".join(lines) + "\n"


_HIDDEN_TEMPLATE = '''{docstring}

from {module} import {entry_point} as _candidate

PROMPT = {prompt}
TEST = {test}
ENTRY_POINT = {entry_point_text}


def _check():
    """HumanEval's check(candidate), defined as HumanEval runs it: among the prompt's own
    definitions (its helpers, e.g. poly), with the entry point's name bound to the solution's."""
    namespace = {{"__name__": "humaneval_problem"}}
    exec(PROMPT, namespace)
    namespace[ENTRY_POINT] = _candidate
    exec(TEST, namespace)
    return namespace["check"]


def test_humaneval():
    _check()(_candidate)
'''


def hidden_tests(problem: Problem) -> TaskTest:
    """A pytest file that runs the problem's own ``check(candidate)`` on ``solution.<entry point>``."""
    entry_point = _python_name(problem.entry_point)
    content = _HIDDEN_TEMPLATE.format(
        docstring=repr(f"The hidden tests of {problem.task_id}, run against {SOLUTION_MODULE}.{entry_point}."),
        module=SOLUTION_MODULE,
        entry_point=entry_point,
        prompt=repr(problem.prompt),
        test=repr(problem.test),
        entry_point_text=repr(entry_point),
    )
    return TaskTest(path=HIDDEN_TEST_PATH, content=content)
